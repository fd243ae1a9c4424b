/** Small previews of stored images (the originals are not kept). */
import sharp from 'sharp';

export type ThumbnailFormat = 'webp' | 'jpeg';

export interface Thumbnail {
  readonly bytes: Uint8Array;
  /** MIME type. */
  readonly type: string;
}

/**
 * A thumbnail whose longest side is at most `maxEdge` (never enlarged), turned upright by its
 * EXIF orientation. The bytes were already decoded once by the engine, so a failure here is not
 * the client's: it is logged by the caller and the image is stored without one.
 */
export async function makeThumbnail(bytes: Uint8Array, maxEdge: number, format: ThumbnailFormat): Promise<Thumbnail> {
  const pipeline = sharp(bytes, { failOn: 'none' }).rotate().resize(maxEdge, maxEdge, { fit: 'inside', withoutEnlargement: true });
  const out = format === 'webp' ? await pipeline.webp({ quality: 75 }).toBuffer() : await pipeline.jpeg({ quality: 80, mozjpeg: true }).toBuffer();
  return { bytes: new Uint8Array(out.buffer, out.byteOffset, out.byteLength), type: `image/${format}` };
}

/** A thumbnail as a `data:` URL (what the API shows). */
export const thumbnailDataUrl = (t: Thumbnail): string => `data:${t.type};base64,${Buffer.from(t.bytes).toString('base64')}`;
