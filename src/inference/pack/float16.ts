/**
 * IEEE 754 half → single precision. Written for the built-in vocabulary of fp16 packs
 * (120 M values at full size), so it works on bit patterns without allocating per value.
 */
export function float16ToFloat32(src: Uint16Array, dst: Float32Array = new Float32Array(src.length)): Float32Array {
  if (dst.length < src.length) throw new RangeError('float16ToFloat32: destination too small');
  const bits = new Uint32Array(dst.buffer, dst.byteOffset, src.length);
  for (let i = 0; i < src.length; i++) {
    const h = src[i]!;
    const sign = (h & 0x8000) << 16;
    const exponent = (h >> 10) & 0x1f;
    const fraction = h & 0x3ff;
    if (exponent === 0) {
      // zero or subnormal: fraction × 2^-24
      dst[i] = fraction === 0 ? (sign ? -0 : 0) : (sign ? -1 : 1) * fraction * 5.960464477539063e-8;
    } else if (exponent === 0x1f) {
      bits[i] = sign | 0x7f800000 | (fraction << 13); // infinity or NaN
    } else {
      bits[i] = sign | ((exponent + 112) << 23) | (fraction << 13);
    }
  }
  return dst;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/**
 * IEEE 754 single → half precision, rounding to nearest even (as numpy's astype(float16)).
 * For float16 label-bank segments; values beyond half's range become ±infinity.
 */
export function float32ToFloat16(src: Float32Array, dst: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  if (dst.length < src.length) throw new RangeError('float32ToFloat16: destination too small');
  for (let i = 0; i < src.length; i++) {
    f32[0] = src[i]!;
    const x = u32[0]!;
    const sign = (x >>> 16) & 0x8000;
    const exponent = (x >>> 23) & 0xff;
    const mantissa = x & 0x7fffff;
    if (exponent === 0xff) {
      dst[i] = sign | 0x7c00 | (mantissa ? 0x200 : 0); // infinity or NaN
      continue;
    }
    const e = exponent - 112; // rebias 127 → 15
    if (e >= 0x1f) {
      dst[i] = sign | 0x7c00; // overflow
    } else if (e <= 0) {
      // subnormal half (or zero): shift the implicit-1 mantissa into place, round to nearest even
      if (e < -10) {
        dst[i] = sign;
        continue;
      }
      const m = mantissa | 0x800000;
      const shift = 14 - e;
      let half = m >>> shift;
      const rest = m & ((1 << shift) - 1);
      const halfway = 1 << (shift - 1);
      if (rest > halfway || (rest === halfway && half & 1)) half++;
      dst[i] = sign | half;
    } else {
      let half = (e << 10) | (mantissa >>> 13);
      const rest = mantissa & 0x1fff;
      if (rest > 0x1000 || (rest === 0x1000 && half & 1)) half++; // may carry into the exponent: correct
      dst[i] = sign | half;
    }
  }
  return dst;
}
