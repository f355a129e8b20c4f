import { gunzipSync } from 'fflate';
import { readFileBytes } from './fs.js';
import { DataError } from './types.js';

/**
 * Reader for the IDX format of the original MNIST files (big-endian header: magic 0x00000803 for
 * unsigned-byte images of rank 3, 0x00000801 for labels of rank 1, then the dimension sizes).
 */
export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

export function parseIdx(buf: Uint8Array, file: string): IdxArray {
  if (buf.length < 4) throw new DataError(`${file}: truncated IDX file (${buf.length} bytes, no header)`);
  if (buf[0] !== 0 || buf[1] !== 0) throw new DataError(`${file}: wrong magic number 0x${Buffer.from(buf.subarray(0, 4)).toString('hex')} (expected 0x000008xx)`);
  const type = buf[2]!;
  const rank = buf[3]!;
  if (type !== 0x08) throw new DataError(`${file}: unsupported IDX element type 0x${type.toString(16)} (only unsigned bytes, 0x08)`);
  if (rank < 1 || rank > 4) throw new DataError(`${file}: unsupported IDX rank ${rank}`);
  const headerLen = 4 + 4 * rank;
  if (buf.length < headerLen) throw new DataError(`${file}: truncated IDX header`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const dims: number[] = [];
  for (let i = 0; i < rank; i++) dims.push(view.getUint32(4 + 4 * i, false));
  const expected = dims.reduce((a, b) => a * b, 1);
  const have = buf.length - headerLen;
  if (have < expected) throw new DataError(`${file}: truncated file: header promises ${dims.join('×')} = ${expected} bytes of data, found ${have}`);
  if (have > expected) throw new DataError(`${file}: ${have - expected} unexpected trailing bytes after ${dims.join('×')} data`);
  return { dims, data: buf.subarray(headerLen) };
}

export function readIdx(file: string): IdxArray {
  let bytes = readFileBytes(file);
  // The files are often distributed gzipped (train-images-idx3-ubyte.gz); gzip magic is 1f 8b.
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      bytes = gunzipSync(bytes);
    } catch (e) {
      throw new DataError(`${file}: corrupt gzip stream (${(e as Error).message})`);
    }
  }
  return parseIdx(bytes, file);
}
