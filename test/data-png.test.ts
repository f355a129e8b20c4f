import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inflateSync } from 'node:zlib';
import { DataError, decodePng, encodePng, floatToImages, imagesToFloat, loadMnist, readPng, writePngGrid } from '../src/data/index.js';

const dir = mkdtempSync(join(tmpdir(), 'dplens-png-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Reads IHDR and the inflated IDAT stream by hand, independently of pngjs. */
function pngChunks(bytes: Uint8Array): { width: number; height: number; bitDepth: number; colorType: number; raw: Buffer } {
  const b = Buffer.from(bytes);
  assert.equal(b.subarray(0, 8).toString('hex'), '89504e470d0a1a0a');
  let p = 8;
  let ihdr: Buffer | undefined;
  const idat: Buffer[] = [];
  while (p < b.length) {
    const len = b.readUInt32BE(p);
    const type = b.subarray(p + 4, p + 8).toString('latin1');
    const data = b.subarray(p + 8, p + 8 + len);
    if (type === 'IHDR') ihdr = data;
    if (type === 'IDAT') idat.push(data);
    p += 12 + len;
  }
  assert.ok(ihdr);
  return { width: ihdr.readUInt32BE(0), height: ihdr.readUInt32BE(4), bitDepth: ihdr[8]!, colorType: ihdr[9]!, raw: inflateSync(Buffer.concat(idat)) };
}

test('encodePng writes 8-bit grey (type 0) and RGB (type 2) PNGs that decode back exactly', () => {
  const grey = Uint8Array.from({ length: 7 * 3 }, (_, k) => (k * 37) % 256);
  const png = encodePng(grey, { width: 7, height: 3, channels: 1 });
  const c = pngChunks(png);
  assert.deepEqual([c.width, c.height, c.bitDepth, c.colorType], [7, 3, 8, 0]);
  // 3 scanlines of (filter byte + 7 pixels).
  assert.equal(c.raw.length, 3 * 8);
  assert.deepEqual(decodePng(png), { width: 7, height: 3, channels: 1, data: grey });
  const rgb = Uint8Array.from({ length: 4 * 2 * 3 }, (_, k) => (k * 53 + 11) % 256);
  const png3 = encodePng(rgb, { width: 4, height: 2, channels: 3 });
  assert.equal(pngChunks(png3).colorType, 2);
  assert.deepEqual(decodePng(png3).data, rgb);
  // Forcing grey on colour applies BT.601 luma.
  const px = decodePng(encodePng(Uint8Array.from([255, 0, 0]), { width: 1, height: 1, channels: 3 }), 'x', 1);
  assert.deepEqual(Array.from(px.data), [76]);
  assert.throws(() => encodePng(grey, { width: 7, height: 4, channels: 1 }), (e: Error) => e instanceof DataError && /needs 28 bytes, got 21/.test(e.message));
  assert.throws(() => decodePng(new Uint8Array([1, 2, 3]), 'junk.png'), (e: Error) => e instanceof DataError && /^junk\.png: cannot decode PNG/.test(e.message));
});

test('writePngGrid: one row per class, first perClass images of each class, scaled, with gaps', () => {
  const m = loadMnist();
  const n = 200;
  const images = m.test.images.subarray(0, n * 784);
  const labels = m.test.labels.subarray(0, n);
  const file = join(dir, 'grid.png');
  const grid = writePngGrid(file, images, labels, { height: 28, width: 28, channels: 1, numClasses: 10, perClass: 5, scale: 2, gap: 2 });
  assert.equal(grid.width, 5 * 56 + 6 * 2);
  assert.equal(grid.height, 10 * 56 + 11 * 2);
  assert.deepEqual(grid.shown, new Array(10).fill(5));
  const img = readPng(file);
  assert.deepEqual([img.width, img.height, img.channels], [grid.width, grid.height, 1]);
  // Cell (class 3, column 2) holds the third test image labelled 3, each pixel doubled.
  const idx = Array.from(labels).flatMap((y, i) => (y === 3 ? [i] : []))[2]!;
  const x0 = 2 + 2 * (56 + 2);
  const y0 = 2 + 3 * (56 + 2);
  for (let r = 0; r < 28; r++) {
    for (let c = 0; c < 28; c++) {
      const v = images[idx * 784 + r * 28 + c]!;
      assert.equal(img.data[(y0 + 2 * r) * grid.width + x0 + 2 * c], v);
      assert.equal(img.data[(y0 + 2 * r + 1) * grid.width + x0 + 2 * c + 1], v);
    }
  }
  // Gap pixels are the background grey.
  assert.equal(img.data[0], 128);
  // A short class leaves empty cells and says so.
  const g2 = writePngGrid(join(dir, 'short.png'), images.subarray(0, 3 * 784), Int32Array.from([0, 0, 1]), { height: 28, width: 28, channels: 1, numClasses: 3, perClass: 4 });
  assert.deepEqual(g2.shown, [2, 1, 0]);
  assert.ok(readFileSync(join(dir, 'short.png')).length > 100);
  assert.throws(
    () => writePngGrid(join(dir, 'bad.png'), images.subarray(0, 784), Int32Array.from([10]), { height: 28, width: 28, channels: 1, numClasses: 10, perClass: 1 }),
    (e: Error) => e instanceof DataError && /label 10 at index 0 out of range \[0, 10\)/.test(e.message),
  );
  assert.throws(
    () => writePngGrid(join(dir, 'bad.png'), images.subarray(0, 700), Int32Array.from([1]), { height: 28, width: 28, channels: 1, numClasses: 10, perClass: 1 }),
    (e: Error) => e instanceof DataError && /1 labels need 784 image bytes/.test(e.message),
  );
});

test('imagesToFloat / floatToImages: NHWC normalisation, per-channel constants, exact byte round trip', () => {
  const bytes = Uint8Array.from([0, 51, 255, 128]);
  assert.deepEqual(Array.from(imagesToFloat(bytes)), Array.from(Float32Array.from([0, 0.2, 1, 128 / 255])));
  const norm = { mean: 0.1307, std: 0.3081 };
  const x = imagesToFloat(bytes, norm);
  assert.ok(Math.abs(x[2]! - (1 - 0.1307) / 0.3081) < 1e-6);
  const all = Uint8Array.from({ length: 256 }, (_, k) => k);
  assert.deepEqual(floatToImages(imagesToFloat(all, norm), norm), all);
  // Per-channel constants on RGB: channel index cycles fastest (NHWC).
  const rgb = imagesToFloat(Uint8Array.from([255, 255, 255, 0, 0, 0]), { mean: [0, 0.5, 1], std: [1, 0.5, 2] }, 3);
  assert.deepEqual(Array.from(rgb), [1, 1, 0, 0, -1, -0.5]);
  // Clamping and NaN on the way back.
  assert.deepEqual(Array.from(floatToImages([-0.5, 1.5, NaN, 0.5])), [0, 255, 0, 128]);
  assert.throws(() => imagesToFloat(bytes, { std: 0 }), (e: Error) => e instanceof DataError && /std must be positive/.test(e.message));
  assert.throws(() => imagesToFloat(bytes, { mean: [0, 0] }, 3), (e: Error) => e instanceof DataError && /mean has 2 entries for 3 channels/.test(e.message));
});
