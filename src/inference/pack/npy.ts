/**
 * A small reader for NumPy `.npy` files (format versions 1–3), enough for reference
 * arrays: little-endian float32, int32, int64, uint8 and bool, C order.
 */
import { readFileSync } from 'node:fs';

export type NpyData = Float32Array | Int32Array | BigInt64Array | Uint8Array;

export interface NpyArray {
  shape: number[];
  /** NumPy's type string, e.g. '<f4'. */
  dtype: string;
  data: NpyData;
}

const MAGIC = '\x93NUMPY';

export function parseNpy(bytes: Uint8Array): NpyArray {
  const latin1 = (a: number, b: number) => String.fromCharCode(...bytes.subarray(a, b));
  if (bytes.length < 10 || latin1(0, 6) !== MAGIC) throw new Error('not a .npy file (bad magic)');
  const major = bytes[6]!;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const start = major === 1 ? 10 : 12;
  const header = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(bytes.subarray(start, start + headerLen));
  const descr = /'descr'\s*:\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || !fortran || shapeText === undefined) throw new Error(`.npy header not understood: ${header}`);
  if (fortran === 'True') throw new Error('.npy in Fortran order is not supported');
  const shape = shapeText.split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  const count = shape.reduce((a, b) => a * b, 1);
  const offset = start + headerLen;
  // Copy into a fresh buffer: typed arrays need alignment (and Buffer#slice would not copy).
  const body = new Uint8Array(bytes.byteLength - offset);
  body.set(bytes.subarray(offset));
  const make = (): NpyData => {
    switch (descr) {
      case '<f4':
        return new Float32Array(body.buffer, 0, count);
      case '<i4':
        return new Int32Array(body.buffer, 0, count);
      case '<i8':
        return new BigInt64Array(body.buffer, 0, count);
      case '|u1':
      case '|b1':
        return new Uint8Array(body.buffer, 0, count);
      default:
        throw new Error(`.npy dtype ${descr} is not supported`);
    }
  };
  const itemSize = descr === '<i8' ? 8 : descr.endsWith('1') ? 1 : 4;
  if (body.byteLength < count * itemSize) throw new Error(`.npy body too short: ${body.byteLength} bytes for ${count} × ${descr}`);
  return { shape, dtype: descr, data: make() };
}

export function readNpy(path: string): NpyArray {
  return parseNpy(readFileSync(path));
}
