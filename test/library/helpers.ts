import sharp from 'sharp';

/** A PNG of seeded noise: different seeds give images whose encodings (and tiny-pack scores) differ. */
export async function noisePng(seed: number, width = 48, height = 40): Promise<Uint8Array> {
  const px = Buffer.alloc(width * height * 3);
  let x = seed * 7919 + 17;
  for (let i = 0; i < px.length; i++) px[i] = (x = (x * 1103515245 + 12345) % 2147483648) >>> 23;
  const png = await sharp(px, { raw: { width, height, channels: 3 } }).png().toBuffer();
  return new Uint8Array(png.buffer, png.byteOffset, png.byteLength);
}

export const base64Of = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');
