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
