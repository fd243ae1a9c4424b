/**
 * Antialiased bilinear resize of 8-bit RGB, computing what Pillow's `Image.resize(...,
 * BILINEAR)` computes (and so torchvision's `Resize` on a PIL image, which RAM++ was
 * trained with): a separable triangle filter whose support widens with the downscale
 * factor, fixed-point weights with 22 fractional bits, a horizontal pass rounded to
 * 8 bits, then a vertical pass. Written from the published algorithm, not from Pillow's
 * code; results are tested against Pillow's output.
 *
 * The two integer passes run in C (native/resample.c, built by `npm install` with node-gyp)
 * when that addon is built, and in JavaScript otherwise; both compute the same bytes from
 * the same weight tables (computed here), the C one about 4× faster.
 */
import { createRequire } from 'node:module';

const PRECISION_BITS = 32 - 8 - 2;
const ONE = 1 << PRECISION_BITS;
const HALF = 1 << (PRECISION_BITS - 1);

interface Weights {
  /** Per output index: first input index used. */
  first: Int32Array;
  /** Per output index: number of input pixels used. */
  count: Int32Array;
  /** Per output index, `taps` fixed-point weights (only `count` of them used). */
  weights: Int32Array;
  taps: number;
}

const triangle = (x: number) => {
  const a = Math.abs(x);
  return a < 1 ? 1 - a : 0;
};

/** Filter weights mapping `inSize` samples onto `outSize` (pixel centres at i + 0.5). */
function weightsFor(inSize: number, outSize: number): Weights {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filterScale; // the triangle's support is 1, widened when shrinking
  const taps = Math.ceil(support) * 2 + 1;
  const first = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Int32Array(outSize * taps);
  const w = new Float64Array(taps);
  for (let o = 0; o < outSize; o++) {
    const center = (o + 0.5) * scale;
    const lo = Math.max(0, Math.trunc(center - support + 0.5));
    const hi = Math.min(inSize, Math.trunc(center + support + 0.5));
    const n = hi - lo;
    let sum = 0;
    for (let k = 0; k < n; k++) {
      w[k] = triangle((k + lo - center + 0.5) / filterScale);
      sum += w[k]!;
    }
    for (let k = 0; k < n; k++) {
      const v = sum !== 0 ? w[k]! / sum : w[k]!;
      weights[o * taps + k] = v < 0 ? Math.trunc(-0.5 + v * ONE) : Math.trunc(0.5 + v * ONE);
    }
    first[o] = lo;
    count[o] = n;
  }
  return { first, count, weights, taps };
}

const clip8 = (acc: number) => {
  if (acc <= 0) return 0;
  if (acc >= ONE * 256) return 255;
  return acc >> PRECISION_BITS;
};

interface NativePasses {
  horizontal(src: Uint8Array, width: number, rows: number, out: Uint8Array, outWidth: number, first: Int32Array, count: Int32Array, weights: Int32Array, taps: number): void;
  vertical(src: Uint8Array, stride: number, rowFirst: number, out: Uint8Array, outHeight: number, first: Int32Array, count: Int32Array, weights: Int32Array, taps: number): void;
  jpegRowsResized(bytes: Uint8Array, width: number, height: number, rowFirst: number, rowEnd: number, mid: Uint8Array, outWidth: number, first: Int32Array, count: Int32Array, weights: Int32Array, taps: number): boolean;
}

/** The C passes, or null when the addon was not built (no compiler at install): then JavaScript. */
const nativePasses: NativePasses | null = (() => {
  try {
    return createRequire(import.meta.url)('./native/build/Release/omnitag_resample.node') as NativePasses;
  } catch {
    return null;
  }
})();

/** 'native': the C passes; 'js': the JavaScript ones. Both give the same bytes. */
export type ResampleImplementation = 'native' | 'js';

/** The implementation used unless one is asked for: native when the addon is built. */
export const defaultResampleImplementation: ResampleImplementation = nativePasses ? 'native' : 'js';

export interface RgbImage {
  /** Interleaved RGB, row-major, `width * height * 3` bytes. */
  data: Uint8Array;
  width: number;
  height: number;
}

/**
 * Resizes interleaved 8-bit RGB to `outWidth` × `outHeight` (aspect ratio not kept).
 * Cost is about (height·outWidth·taps_x + outHeight·outWidth·taps_y)·3 integer
 * multiply-adds, with taps ≈ 2·(in/out)+1: ~130 ms for 3216×4288 → 384² on one core.
 */
export function resizeBilinearAntialias(
  image: RgbImage,
  outWidth: number,
  outHeight: number,
  implementation: ResampleImplementation = defaultResampleImplementation,
): RgbImage {
  const steps = resizeSteps(image, outWidth, outHeight, implementation);
  for (;;) {
    const step = steps.next();
    if (step.done) return step.value;
  }
}

/**
 * The same, giving the event loop a turn between slices of rows (a 12-megapixel photo
 * is otherwise ~100 ms of uninterrupted work on the calling thread).
 */
export async function resizeBilinearAntialiasAsync(
  image: RgbImage,
  outWidth: number,
  outHeight: number,
  implementation: ResampleImplementation = defaultResampleImplementation,
): Promise<RgbImage> {
  const steps = resizeSteps(image, outWidth, outHeight, implementation);
  for (;;) {
    const step = steps.next();
    if (step.done) return step.value;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

/**
 * A JPEG of `width` × `height` decoded by libjpeg-turbo in the addon row by row, each row going
 * through the horizontal pass as it is decoded, then the vertical pass: the same bytes as
 * decoding the whole image and resizing it, without ever holding the full-size image (which
 * is most of a 12 MP photo's cost here). Null when the addon is not built, the sizes do not
 * need both passes, or libjpeg met anything unusual (a warning, an error, CMYK, a size other
 * than the header said): the caller then decodes the general way, which also decides the error.
 */
export function jpegResizedNative(bytes: Uint8Array, width: number, height: number, outWidth: number, outHeight: number): RgbImage | null {
  if (!nativePasses || width === outWidth || height === outHeight || !(outWidth > 0 && outHeight > 0)) return null;
  const vertical = weightsFor(height, outHeight);
  const rowFirst = vertical.first[0]!;
  const rowEnd = vertical.first[outHeight - 1]! + vertical.count[outHeight - 1]!;
  const w = weightsFor(width, outWidth);
  const mid = new Uint8Array((rowEnd - rowFirst) * outWidth * 3);
  if (!nativePasses.jpegRowsResized(bytes, width, height, rowFirst, rowEnd, mid, outWidth, w.first, w.count, w.weights, w.taps)) return null;
  const out = new Uint8Array(outHeight * outWidth * 3);
  nativePasses.vertical(mid, outWidth * 3, rowFirst, out, outHeight, vertical.first, vertical.count, vertical.weights, vertical.taps);
  return { data: out, width: outWidth, height: outHeight };
}

/** About this many multiply-adds between yields (a few milliseconds). */
const WORK_PER_SLICE = 4_000_000;

function* resizeSteps(image: RgbImage, outWidth: number, outHeight: number, implementation: ResampleImplementation): Generator<void, RgbImage> {
  const native = implementation === 'native' ? nativePasses : null;
  if (implementation === 'native' && !native) throw new Error('the native resampler is not built (npm run build:native)');
  const { data, width, height } = image;
  if (!(width > 0 && height > 0 && outWidth > 0 && outHeight > 0)) throw new RangeError('sizes must be positive');
  if (data.length < width * height * 3) throw new RangeError('RGB buffer shorter than width × height × 3');
  if (width === outWidth && height === outHeight) return { data: data.slice(0, width * height * 3), width, height };

  const vertical = height !== outHeight ? weightsFor(height, outHeight) : null;
  // Only the source rows the vertical pass will read need the horizontal pass.
  const rowFirst = vertical ? vertical.first[0]! : 0;
  const rowEnd = vertical ? vertical.first[outHeight - 1]! + vertical.count[outHeight - 1]! : height;

  let rows: Uint8Array = data.subarray(rowFirst * width * 3, rowEnd * width * 3);
  let rowWidth = width;
  if (width !== outWidth) {
    const w = weightsFor(width, outWidth);
    const nRows = rowEnd - rowFirst;
    const out = new Uint8Array(nRows * outWidth * 3);
    if (native) native.horizontal(rows, width, nRows, out, outWidth, w.first, w.count, w.weights, w.taps);
    const slice = Math.max(1, Math.floor(WORK_PER_SLICE / (outWidth * w.taps * 3)));
    for (let y = native ? nRows : 0; y < nRows; y += slice) {
      horizontalPass(rows, width, out, outWidth, w, y, Math.min(nRows, y + slice));
      yield;
    }
    rows = out;
    rowWidth = outWidth;
  }
  if (!vertical) return { data: rows, width: rowWidth, height };

  const out = new Uint8Array(outHeight * rowWidth * 3);
  if (native) {
    native.vertical(rows, rowWidth * 3, rowFirst, out, outHeight, vertical.first, vertical.count, vertical.weights, vertical.taps);
    return { data: out, width: rowWidth, height: outHeight };
  }
  const slice = Math.max(1, Math.floor(WORK_PER_SLICE / (rowWidth * 3 * vertical.taps)));
  for (let y = 0; y < outHeight; y += slice) {
    if (y > 0) yield;
    verticalPass(rows, rowWidth * 3, rowFirst, out, vertical, y, Math.min(outHeight, y + slice));
  }
  return { data: out, width: rowWidth, height: outHeight };
}

/** Rows [yFrom, yTo) of `src` (width `width`) filtered horizontally into `out` (width `outWidth`). */
function horizontalPass(src: Uint8Array, width: number, out: Uint8Array, outWidth: number, w: Weights, yFrom: number, yTo: number) {
  const { first, count, weights, taps } = w;
  for (let y = yFrom; y < yTo; y++) {
    const inRow = y * width * 3;
    let o = y * outWidth * 3;
    for (let x = 0; x < outWidth; x++) {
      const base = x * taps;
      const n = count[x]!;
      let p = inRow + first[x]! * 3;
      let r = HALF;
      let g = HALF;
      let b = HALF;
      for (let k = 0; k < n; k++) {
        const wk = weights[base + k]!;
        r += src[p]! * wk;
        g += src[p + 1]! * wk;
        b += src[p + 2]! * wk;
        p += 3;
      }
      out[o++] = clip8(r);
      out[o++] = clip8(g);
      out[o++] = clip8(b);
    }
  }
}

/** Output rows [yFrom, yTo) filtered vertically from `src` (whose row 0 is source row `rowFirst`). */
function verticalPass(src: Uint8Array, stride: number, rowFirst: number, out: Uint8Array, w: Weights, yFrom: number, yTo: number) {
  const { first, count, weights, taps } = w;
  const acc = new Float64Array(stride);
  for (let y = yFrom; y < yTo; y++) {
    // Row by row (not column by column) so that reads stay sequential in memory.
    acc.fill(HALF);
    const base = y * taps;
    const n = count[y]!;
    const top = first[y]! - rowFirst;
    for (let k = 0; k < n; k++) {
      const wk = weights[base + k]!;
      const row = (top + k) * stride;
      for (let x = 0; x < stride; x++) acc[x]! += src[row + x]! * wk;
    }
    const o = y * stride;
    for (let x = 0; x < stride; x++) out[o + x] = clip8(acc[x]!);
  }
}
