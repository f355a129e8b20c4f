import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { zipSync } from 'fflate';
import { DataError, encodeNpy, loadDataset, loadNpzDataset, parseNpy, readImageNpz, readNpz, writeNpz, type NpyArrayInput } from '../src/data/index.js';

const dir = mkdtempSync(join(tmpdir(), 'dplens-npz-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A python3 that can import numpy, or undefined. */
function numpyPython(): string | undefined {
  for (const py of ['python3', '/usr/bin/python3']) {
    const r = spawnSync(py, ['-c', 'import numpy'], { encoding: 'utf8' });
    if (r.status === 0) return py;
  }
  return undefined;
}
const PY = numpyPython();

function expectDataError(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: Error) => {
    assert.ok(e instanceof DataError, `expected DataError, got ${e.name}: ${e.message}`);
    assert.match(e.message, re);
    return true;
  });
}

/** A tiny valid MedMNIST-style archive: 6 train (3 per class), 2 test, 4×3 images. */
function tinyArrays(): Record<string, NpyArrayInput> {
  const trainImages = Uint8Array.from({ length: 6 * 12 }, (_, k) => (k * 7) % 256);
  return {
    train_images: { dtype: 'uint8', shape: [6, 4, 3], data: trainImages },
    train_labels: { dtype: 'int64', shape: [6, 1], data: [0, 1, 0, 1, 0, 1] },
    test_images: { dtype: 'uint8', shape: [2, 4, 3], data: new Uint8Array(24).fill(9) },
    test_labels: { dtype: 'uint8', shape: [2], data: [1, 0] },
  };
}

test('npy: every dtype round-trips through encode/parse, incl. scalars and 0-length arrays', () => {
  const cases: NpyArrayInput[] = [
    { dtype: 'uint8', shape: [2, 3], data: [0, 1, 2, 253, 254, 255] },
    { dtype: 'int8', shape: [3], data: [-128, 0, 127] },
    { dtype: 'int16', shape: [2], data: [-32768, 32767] },
    { dtype: 'uint16', shape: [2], data: [0, 65535] },
    { dtype: 'int32', shape: [2, 1, 2], data: [-2147483648, 2147483647, 5, -5] },
    { dtype: 'uint32', shape: [1], data: [4294967295] },
    { dtype: 'int64', shape: [3], data: [-(2 ** 53) + 1, 0, 2 ** 53 - 1] },
    { dtype: 'float32', shape: [4], data: [0.5, -1.25, NaN, Infinity] },
    { dtype: 'float64', shape: [], data: [Math.PI] },
    { dtype: 'bool', shape: [3], data: [1, 0, 1] },
    { dtype: 'float32', shape: [0, 5], data: [] },
  ];
  for (const c of cases) {
    const bytes = encodeNpy(c);
    // numpy's layout: data starts on a 64-byte boundary, header ends with '\n'.
    const hlen = bytes[8]! | (bytes[9]! << 8);
    assert.equal((10 + hlen) % 64, 0);
    assert.equal(bytes[10 + hlen - 1], 10);
    const back = parseNpy(bytes, 'case.npy');
    assert.equal(back.dtype, c.dtype);
    assert.deepEqual(back.shape, [...c.shape]);
    const got = Array.from(back.data as ArrayLike<number | bigint>, Number);
    assert.deepEqual(got, Array.from(c.data as ArrayLike<number>));
  }
});

test('npy: refuses values that do not fit the dtype (no silent wrap-around)', () => {
  expectDataError(() => encodeNpy({ dtype: 'uint8', shape: [2], data: [1, 256] }, 'x'), /x: value 256 at index 1 is not an exact uint8/);
  expectDataError(() => encodeNpy({ dtype: 'int32', shape: [1], data: [1.5] }, 'x'), /value 1\.5 at index 0 is not an exact int32/);
  expectDataError(() => encodeNpy({ dtype: 'float32', shape: [2, 2], data: [1, 2, 3] }, 'x'), /shape \[2, 2\] needs 4 elements, data has 3/);
});

test('npz: numpy reads what we write and we read what numpy writes (big-endian, Fortran order, zip64, compressed)', (t) => {
  if (!PY) {
    t.skip('python3 with numpy not found: numpy interop not checked');
    return;
  }
  const ours = join(dir, 'ours.npz');
  writeNpz(ours, {
    images: { dtype: 'uint8', shape: [2, 2, 2], data: [0, 1, 2, 3, 252, 253, 254, 255] },
    labels: { dtype: 'int64', shape: [2], data: Int32Array.from([7, -3]) },
    f: { dtype: 'float32', shape: [3], data: [0.1, -2.5, 1e-30] },
    b: { dtype: 'bool', shape: [2], data: [0, 1] },
  });
  const check = spawnSync(
    PY,
    [
      '-c',
      `import numpy as np, json, sys
d = np.load(sys.argv[1])
print(json.dumps({k: [str(d[k].dtype), list(d[k].shape), d[k].ravel().tolist()] for k in sorted(d.files)}))`,
      ours,
    ],
    { encoding: 'utf8' },
  );
  assert.equal(check.status, 0, check.stderr);
  const seen = JSON.parse(check.stdout) as Record<string, [string, number[], number[]]>;
  assert.deepEqual(seen.images, ['uint8', [2, 2, 2], [0, 1, 2, 3, 252, 253, 254, 255]]);
  assert.deepEqual(seen.labels, ['int64', [2], [7, -3]]);
  assert.deepEqual(seen.b, ['bool', [2], [false, true]]);
  assert.equal(seen.f![0], 'float32');
  assert.deepEqual(seen.f![2], Array.from(new Float32Array([0.1, -2.5, 1e-30])));

  const theirs = join(dir, 'theirs.npz');
  const theirsC = join(dir, 'theirs-compressed.npz');
  const gen = spawnSync(
    PY,
    [
      '-c',
      `import numpy as np, sys
a = np.arange(24, dtype='>i4').reshape(2, 3, 4)
f = np.asfortranarray(np.arange(6, dtype='<f8').reshape(2, 3) / 4)
np.savez(sys.argv[1], a=a, f=f, u=np.array([1, 65535], dtype='>u2'), l=np.array([[1], [0]], dtype=np.int64), b=np.array([True, False]))
np.savez_compressed(sys.argv[2], a=a)`,
      theirs,
      theirsC,
    ],
    { encoding: 'utf8' },
  );
  assert.equal(gen.status, 0, gen.stderr);
  for (const file of [theirs, theirsC]) {
    const r = readNpz(file);
    assert.equal(r.a!.dtype, 'int32');
    assert.deepEqual(r.a!.shape, [2, 3, 4]);
    assert.deepEqual(Array.from(r.a!.data as Int32Array), Array.from({ length: 24 }, (_, k) => k));
  }
  const r = readNpz(theirs);
  // Fortran order is converted to C (row-major) order.
  assert.deepEqual(Array.from(r.f!.data as Float64Array), [0, 0.25, 0.5, 0.75, 1, 1.25]);
  assert.deepEqual(Array.from(r.u!.data as Uint16Array), [1, 65535]);
  assert.deepEqual(r.l!.shape, [2, 1]);
  assert.deepEqual(Array.from(r.l!.data as BigInt64Array), [1n, 0n]);
  assert.deepEqual(Array.from(r.b!.data as Uint8Array), [1, 0]);
});

test('npz dataset: MedMNIST layout with (N,1) int64 labels loads, and our own writer output reloads identically', () => {
  const file = join(dir, 'tiny.npz');
  writeNpz(file, tinyArrays());
  const d = loadDataset({ path: file });
  assert.equal(d.name, 'tiny');
  assert.deepEqual([d.height, d.width, d.channels, d.numClasses], [4, 3, 1, 2]);
  assert.equal(d.train.count, 6);
  assert.deepEqual(Array.from(d.train.labels), [0, 1, 0, 1, 0, 1]);
  assert.deepEqual(Array.from(d.test.labels), [1, 0]);
  assert.equal(d.train.images[5], 35);
  // Same arrays written uncompressed → same fingerprint (it depends on content only).
  const file2 = join(dir, 'tiny2.npz');
  writeNpz(file2, tinyArrays(), { compress: false });
  assert.notDeepEqual(readFileSync(file), readFileSync(file2));
  assert.equal(loadNpzDataset(file2).rawFingerprint, d.rawFingerprint);
});

test('npz dataset: float images in [0,1] are scaled to bytes; NaN and Inf are rejected naming the file and array', () => {
  const a = tinyArrays();
  const file = join(dir, 'float.npz');
  writeNpz(file, { ...a, train_images: { dtype: 'float32', shape: [6, 4, 3], data: Float32Array.from({ length: 72 }, (_, k) => (k % 3) / 2) } });
  const d = loadNpzDataset(file);
  assert.deepEqual(Array.from(d.train.images.subarray(0, 3)), [0, 128, 255]);
  const nan = Float32Array.from({ length: 72 }, () => 0.5);
  nan[17] = NaN;
  const fNan = join(dir, 'nan.npz');
  writeNpz(fNan, { ...a, train_images: { dtype: 'float32', shape: [6, 4, 3], data: nan } });
  expectDataError(() => loadNpzDataset(fNan), /nan\.npz:train_images: NaN pixel value at flat index 17/);
  nan[17] = -Infinity;
  writeNpz(fNan, { ...a, train_images: { dtype: 'float64', shape: [6, 4, 3], data: nan } });
  expectDataError(() => loadNpzDataset(fNan), /nan\.npz:train_images: -Inf pixel value at flat index 17/);
});

test('npz errors: wrong magic, corrupt zip, truncated member, missing arrays, shape/count mismatch, labels out of range, empty classes', () => {
  const a = tinyArrays();
  const write = (name: string, arrays: Record<string, NpyArrayInput>): string => {
    const f = join(dir, name);
    writeNpz(f, arrays);
    return f;
  };
  // Not a zip at all.
  const notZip = join(dir, 'notzip.npz');
  writeFileSync(notZip, 'hello world');
  expectDataError(() => readNpz(notZip), /notzip\.npz: not a zip\/\.npz archive \(wrong magic number 0x68656c6c/);
  // A zip whose bytes are cut off half-way.
  const good = readFileSync(write('good.npz', a));
  const cut = join(dir, 'cut.npz');
  writeFileSync(cut, good.subarray(0, Math.floor(good.length / 2)));
  expectDataError(() => readNpz(cut), /cut\.npz: corrupt zip\/\.npz archive/);
  // A zip member that is not npy (wrong magic) and one that is truncated.
  const npy = encodeNpy(a.train_images!);
  const badMember = join(dir, 'badmember.npz');
  writeFileSync(badMember, zipSync({ 'train_images.npy': new TextEncoder().encode('PK not numpy at all') }));
  expectDataError(() => readNpz(badMember), /badmember\.npz:train_images\.npy: wrong magic number .* not a \.npy file/);
  const truncMember = join(dir, 'truncmember.npz');
  writeFileSync(truncMember, zipSync({ 'train_images.npy': npy.subarray(0, npy.length - 5) }));
  expectDataError(() => readNpz(truncMember), /truncmember\.npz:train_images\.npy: truncated file: header promises shape \(6, 4, 3\) of uint8 = 72 bytes of data, found 67/);
  // Missing arrays.
  const noLabels = write('nolabels.npz', { train_images: a.train_images!, test_images: a.test_images!, test_labels: a.test_labels! });
  expectDataError(() => loadNpzDataset(noLabels), /nolabels\.npz: missing array 'train_labels' \(archive holds: test_images, test_labels, train_images\)/);
  const unrelated = write('unrelated.npz', { foo: a.test_labels! });
  expectDataError(() => loadNpzDataset(unrelated), /unrelated\.npz: missing arrays: expected train_images\/train_labels .* archive holds: foo/);
  // Count mismatch between images and labels.
  const count = write('count.npz', { ...a, train_labels: { dtype: 'uint8', shape: [5], data: [0, 1, 0, 1, 0] } });
  expectDataError(() => loadNpzDataset(count), /count\.npz:train_labels: count mismatch: 5 labels for 6 images in train_images/);
  // Shape mismatches.
  const rank = write('rank.npz', { ...a, train_images: { dtype: 'uint8', shape: [72], data: new Uint8Array(72) } });
  expectDataError(() => loadNpzDataset(rank), /rank\.npz:train_images: shape mismatch: expected images of shape \(N, H, W\)/);
  const hw = write('hw.npz', { ...a, test_images: { dtype: 'uint8', shape: [2, 3, 4], data: new Uint8Array(24) } });
  expectDataError(() => loadNpzDataset(hw), /hw\.npz: shape mismatch: train images are 4×3×1 but test images are 3×4×1/);
  // Labels out of range: negative, and above a given class count.
  const neg = write('neg.npz', { ...a, train_labels: { dtype: 'int32', shape: [6], data: [0, 1, -1, 1, 0, 1] } });
  expectDataError(() => loadNpzDataset(neg), /neg\.npz \(train\): label -1 at index 2 out of range \[0, 2\)/);
  expectDataError(() => loadNpzDataset(write('range.npz', { ...a, test_labels: { dtype: 'uint8', shape: [2], data: [2, 0] } })), /range\.npz \(test\): label 2 at index 0 out of range \[0, 2\)/);
  // Empty class: labels 0 and 2 only, so class 1 has no training example.
  const gap = write('gap.npz', { ...a, train_labels: { dtype: 'uint8', shape: [6], data: [0, 2, 0, 2, 0, 2] } });
  expectDataError(() => loadNpzDataset(gap), /gap\.npz: empty classes: no training examples for class 1 of 3/);
  // Pixel values outside [0,255] in a wider integer dtype.
  const wide = write('wide.npz', { ...a, train_images: { dtype: 'int16', shape: [6, 4, 3], data: Int16Array.from({ length: 72 }, (_, k) => (k === 3 ? 300 : 1)) } });
  expectDataError(() => loadNpzDataset(wide), /wide\.npz:train_images: pixel value 300 at flat index 3 outside \[0, 255\]/);
});

test('readImageNpz: synthetic-output layout (images/labels), geometry and label checks, empty classes allowed', () => {
  const file = join(dir, 'synthetic.npz');
  writeNpz(file, { images: { dtype: 'uint8', shape: [3, 2, 2, 1], data: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12] }, labels: { dtype: 'uint8', shape: [3], data: [0, 0, 2] } });
  const s = readImageNpz(file, { numClasses: 3, expect: { height: 2, width: 2, channels: 1 } });
  assert.deepEqual([s.count, s.height, s.width, s.channels], [3, 2, 2, 1]);
  assert.deepEqual(Array.from(s.labels), [0, 0, 2]);
  expectDataError(() => readImageNpz(file, { numClasses: 2 }), /synthetic\.npz:labels: label 2 at index 2 out of range \[0, 2\)/);
  expectDataError(() => readImageNpz(file, { expect: { height: 28, width: 28 } }), /synthetic\.npz:images: shape mismatch: images are 2×2×1 \(H×W×C\), expected 28×28×1/);
  expectDataError(() => readImageNpz(file, { imagesKey: 'x' }), /synthetic\.npz: missing array 'x' \(archive holds: images, labels\)/);
  // As a dataset (train only, empty test split) the empty class is an error.
  const ok = join(dir, 'synthetic-ok.npz');
  writeNpz(ok, { images: { dtype: 'uint8', shape: [2, 2, 2], data: new Uint8Array(8) }, labels: { dtype: 'int32', shape: [2], data: [1, 0] } });
  const d = loadNpzDataset(ok);
  assert.deepEqual([d.train.count, d.test.count, d.numClasses], [2, 0, 2]);
  expectDataError(() => loadNpzDataset(file), /synthetic\.npz: empty classes: no training examples for class 1 of 3/);
  expectDataError(() => loadNpzDataset(file, { numClasses: 4 }), /synthetic\.npz: empty classes: no training examples for classes 1, 3 of 4/);
});
