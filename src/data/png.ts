import { PNG } from 'pngjs';
import { readFileBytes, writeFileBytes } from './fs.js';
import { DataError } from './types.js';

/** A decoded 8-bit image, row-major H×W×C. */
export interface RawImage {
  width: number;
  height: number;
  /** 1 (grey) or 3 (RGB). */
  channels: number;
  data: Uint8Array;
}

/**
 * Encodes 8-bit grey (channels 1) or RGB (channels 3) pixels, row-major H×W×C, as a PNG
 * (colour type 0 or 2, so greyscale stays one channel on disk).
 */
export function encodePng(data: Uint8Array, opts: { width: number; height: number; channels: number }): Uint8Array {
  const { width, height, channels } = opts;
  if (channels !== 1 && channels !== 3) throw new DataError(`encodePng: channels must be 1 or 3, got ${channels}`);
  if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0) throw new DataError(`encodePng: invalid size ${width}×${height}`);
  if (data.length !== width * height * channels) throw new DataError(`encodePng: ${width}×${height}×${channels} needs ${width * height * channels} bytes, got ${data.length}`);
  const png = new PNG({ width, height });
  const rgba = png.data;
  for (let p = 0, q = 0; p < width * height; p++, q += channels) {
    rgba[4 * p] = data[q]!;
    rgba[4 * p + 1] = data[channels === 1 ? q : q + 1]!;
    rgba[4 * p + 2] = data[channels === 1 ? q : q + 2]!;
    rgba[4 * p + 3] = 255;
  }
  const buf = PNG.sync.write(png, { colorType: channels === 1 ? 0 : 2, inputColorType: 6, inputHasAlpha: true, bitDepth: 8 });
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

/**
 * Decodes a PNG (any colour type / bit depth pngjs reads; 16-bit is scaled to 8-bit, alpha is
 * dropped). `channels` 'auto' gives 1 when every pixel has r = g = b, else 3.
 */
export function decodePng(bytes: Uint8Array, file = 'png', channels: 1 | 3 | 'auto' = 'auto'): RawImage {
  let png: PNG;
  try {
    png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  } catch (e) {
    throw new DataError(`${file}: ${pngProblem(bytes, e)}`);
  }
  const { width, height } = png;
  const rgba = png.data;
  let c: number = channels === 'auto' ? 1 : channels;
  if (channels === 'auto') {
    c = 1;
    for (let p = 0; p < width * height; p++) {
      if (rgba[4 * p] !== rgba[4 * p + 1] || rgba[4 * p] !== rgba[4 * p + 2]) {
        c = 3;
        break;
      }
    }
  }
  const data = new Uint8Array(width * height * c);
  for (let p = 0; p < width * height; p++) {
    if (c === 1) {
      // Luma (ITU-R BT.601) when a colour image is forced to grey.
      const r = rgba[4 * p]!;
      const g = rgba[4 * p + 1]!;
      const b = rgba[4 * p + 2]!;
      data[p] = r === g && g === b ? r : Math.round(0.299 * r + 0.587 * g + 0.114 * b);
    } else {
      data[3 * p] = rgba[4 * p]!;
      data[3 * p + 1] = rgba[4 * p + 1]!;
      data[3 * p + 2] = rgba[4 * p + 2]!;
    }
  }
  return { width, height, channels: c, data };
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** Says in words why pngjs refused `bytes` (its own messages, e.g. on truncation, are cryptic). */
function pngProblem(bytes: Uint8Array, e: unknown): string {
  if (bytes.length === 0) return 'cannot decode PNG (empty file)';
  if (!PNG_SIGNATURE.every((v, k) => bytes[k] === v)) {
    return `cannot decode PNG: wrong magic number 0x${Buffer.from(bytes.subarray(0, 8)).toString('hex')} (expected 0x${Buffer.from(PNG_SIGNATURE).toString('hex')}): not a PNG file`;
  }
  // A complete PNG ends with the IEND chunk: 'IEND' + CRC.
  const tail = Buffer.from(bytes.subarray(Math.max(0, bytes.length - 8), bytes.length - 4)).toString('latin1');
  if (tail !== 'IEND') return `cannot decode PNG: truncated file (${bytes.length} bytes, no IEND chunk at the end)`;
  return `cannot decode PNG: corrupt file (${e instanceof Error ? e.message : String(e)})`;
}

export function readPng(file: string, channels: 1 | 3 | 'auto' = 'auto'): RawImage {
  return decodePng(readFileBytes(file), file, channels);
}

export interface PngGridOptions {
  height: number;
  width: number;
  channels: number;
  numClasses: number;
  /** Images per class (columns). */
  perClass: number;
  /** Integer upscaling of every pixel (nearest neighbour), default 2. */
  scale?: number;
  /** Pixels between cells (after scaling), default 2. */
  gap?: number;
  /** Grey level of the gaps and of empty cells, default 128. */
  background?: number;
}

export interface PngGrid {
  png: Uint8Array;
  width: number;
  height: number;
  /** How many images each class row actually shows (fewer than perClass when the class is short). */
  shown: number[];
}

/**
 * A sample grid: row r shows the first `perClass` images whose label is r, in input order.
 * Images are raw bytes N×H×W×C (the ImageSplit layout).
 */
export function encodePngGrid(images: Uint8Array, labels: ArrayLike<number>, opts: PngGridOptions): PngGrid {
  const { height: h, width: w, channels: c, numClasses, perClass } = opts;
  const scale = opts.scale ?? 2;
  const gap = opts.gap ?? 2;
  const bg = opts.background ?? 128;
  const per = h * w * c;
  if (c !== 1 && c !== 3) throw new DataError(`writePngGrid: channels must be 1 or 3, got ${c}`);
  if (!Number.isInteger(scale) || scale < 1) throw new DataError(`writePngGrid: scale must be a positive integer, got ${scale}`);
  if (!Number.isInteger(perClass) || perClass < 1 || !Number.isInteger(numClasses) || numClasses < 1) {
    throw new DataError(`writePngGrid: perClass and numClasses must be positive integers (got ${perClass}, ${numClasses})`);
  }
  if (images.length !== labels.length * per) {
    throw new DataError(`writePngGrid: ${labels.length} labels need ${labels.length * per} image bytes (${h}×${w}×${c} each), got ${images.length}`);
  }
  const cellW = w * scale;
  const cellH = h * scale;
  const W = perClass * cellW + (perClass + 1) * gap;
  const H = numClasses * cellH + (numClasses + 1) * gap;
  const out = new Uint8Array(W * H * c).fill(bg);
  const shown = new Array<number>(numClasses).fill(0);
  for (let i = 0; i < labels.length; i++) {
    const y = labels[i]!;
    if (!Number.isInteger(y) || y < 0 || y >= numClasses) throw new DataError(`writePngGrid: label ${y} at index ${i} out of range [0, ${numClasses})`);
    const col = shown[y]!;
    if (col >= perClass) continue;
    shown[y] = col + 1;
    const x0 = gap + col * (cellW + gap);
    const y0 = gap + y * (cellH + gap);
    for (let r = 0; r < cellH; r++) {
      const srcRow = i * per + Math.floor(r / scale) * w * c;
      const dstRow = ((y0 + r) * W + x0) * c;
      for (let q = 0; q < cellW; q++) {
        const s = srcRow + Math.floor(q / scale) * c;
        const d = dstRow + q * c;
        for (let k = 0; k < c; k++) out[d + k] = images[s + k]!;
      }
    }
  }
  return { png: encodePng(out, { width: W, height: H, channels: c }), width: W, height: H, shown };
}

/** Writes a per-class sample grid PNG (one row per class) and returns its geometry. */
export function writePngGrid(file: string, images: Uint8Array, labels: ArrayLike<number>, opts: PngGridOptions): PngGrid {
  const grid = encodePngGrid(images, labels, opts);
  writeFileBytes(file, grid.png);
  return grid;
}

/** Per-channel (or scalar) normalisation constants, applied to pixel/255. */
export interface Normalisation {
  mean?: number | readonly number[];
  std?: number | readonly number[];
}

function perChannel(v: number | readonly number[] | undefined, c: number, dflt: number, what: string): number[] {
  if (v === undefined) return new Array<number>(c).fill(dflt);
  if (typeof v === 'number') return new Array<number>(c).fill(v);
  if (v.length !== c) throw new DataError(`imagesToFloat: ${what} has ${v.length} entries for ${c} channels`);
  return [...v];
}

/**
 * Raw bytes (NHWC) → Float32Array NHWC with x = (byte/255 − mean[c]) / std[c].
 * Defaults mean 0, std 1 give values in [0, 1].
 */
export function imagesToFloat(images: Uint8Array, norm: Normalisation = {}, channels = 1): Float32Array {
  const mean = perChannel(norm.mean, channels, 0, 'mean');
  const std = perChannel(norm.std, channels, 1, 'std');
  if (std.some((s) => !(s > 0) || !Number.isFinite(s))) throw new DataError(`imagesToFloat: std must be positive and finite, got ${std.join(', ')}`);
  if (mean.some((m) => !Number.isFinite(m))) throw new DataError(`imagesToFloat: mean must be finite, got ${mean.join(', ')}`);
  if (images.length % channels !== 0) throw new DataError(`imagesToFloat: ${images.length} bytes is not a multiple of ${channels} channels`);
  const out = new Float32Array(images.length);
  if (channels === 1) {
    const a = 1 / (255 * std[0]!);
    const b = mean[0]! / std[0]!;
    for (let k = 0; k < images.length; k++) out[k] = images[k]! * a - b;
    return out;
  }
  for (let k = 0; k < images.length; k++) {
    const ch = k % channels;
    out[k] = (images[k]! / 255 - mean[ch]!) / std[ch]!;
  }
  return out;
}

/**
 * Inverse of imagesToFloat: x → round(clamp((x·std + mean)·255, 0, 255)). NaN becomes 0.
 * Used to store generated samples as raw bytes.
 */
export function floatToImages(x: ArrayLike<number>, norm: Normalisation = {}, channels = 1): Uint8Array {
  const mean = perChannel(norm.mean, channels, 0, 'mean');
  const std = perChannel(norm.std, channels, 1, 'std');
  const out = new Uint8Array(x.length);
  for (let k = 0; k < x.length; k++) {
    const ch = k % channels;
    const v = Math.round((x[k]! * std[ch]! + mean[ch]!) * 255);
    out[k] = v > 255 ? 255 : v > 0 ? v : 0;
  }
  return out;
}
