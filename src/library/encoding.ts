/**
 * Stored image encodings: the image encoder's output [T, E] as little-endian float16 or float32
 * bytes, stamped with the encoder that made it. An encoding is only ever turned back into
 * `ImageEmbeddings` for an engine with the same `imageEncoderId`: another pack's tokens mean
 * nothing to this pack's decoder (ENCODER_CHANGED).
 */
import os from 'node:os';
import { AppError, ErrorCode } from '../core/errors.ts';
import { float16ToFloat32, float32ToFloat16, type EngineInfo, type ImageEmbeddings } from '../inference/index.ts';

export type EncodingDtype = 'float16' | 'float32';

export interface StoredEncoding {
  readonly dtype: EncodingDtype;
  readonly tokens: number;
  readonly dim: number;
  /** `EngineInfo.imageEncoderId` of the engine that made it. */
  readonly encoderId: string;
  /** T × E values, little-endian, 2 or 4 bytes each. */
  readonly bytes: Uint8Array;
}

/** What an engine must match for a stored encoding to be scored by it. */
export type EncoderIdentity = Pick<EngineInfo, 'packName' | 'imageEncoderId' | 'imageTokens' | 'embedDim'>;

// Typed arrays use the platform's byte order; stored bytes are little-endian.
if (os.endianness() !== 'LE') throw new Error('stored image encodings assume a little-endian platform');

export const bytesPerValue = (dtype: EncodingDtype): number => (dtype === 'float16' ? 2 : 4);

/** The engine's float32 embeddings in the stored form (float16: rounded to nearest even). */
export function packEncoding(e: ImageEmbeddings, dtype: EncodingDtype, encoderId: string): StoredEncoding {
  const values = dtype === 'float16' ? float32ToFloat16(e.data) : e.data;
  // a copy of exactly the values (the source may be a view of a larger buffer)
  const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength).slice();
  return { dtype, tokens: e.tokens, dim: e.dim, encoderId, bytes };
}

/** A stored encoding back as embeddings this engine can score; ENCODER_CHANGED when another encoder made it. */
export function unpackEncoding(s: StoredEncoding, engine: EncoderIdentity, imageId?: string): ImageEmbeddings {
  if (s.encoderId !== engine.imageEncoderId || s.tokens !== engine.imageTokens || s.dim !== engine.embedDim) {
    throw encoderChanged(imageId);
  }
  const n = s.tokens * s.dim;
  if (s.bytes.byteLength !== n * bytesPerValue(s.dtype)) {
    throw new Error(`stored encoding of ${s.bytes.byteLength} bytes does not hold ${n} ${s.dtype} values`);
  }
  // copy into an aligned buffer of our own (database buffers may start at any offset)
  const own = s.bytes.slice().buffer;
  const data = s.dtype === 'float16' ? float16ToFloat32(new Uint16Array(own)) : new Float32Array(own);
  return { kind: 'image-embeddings', packName: engine.packName, tokens: s.tokens, dim: s.dim, data };
}

export function encoderChanged(imageId?: string): AppError {
  return new AppError(
    ErrorCode.ENCODER_CHANGED,
    'the stored image was encoded by another model pack\'s image encoder and cannot be scored by this one; store the image again',
    { details: imageId ? { imageId } : {} },
  );
}
