import { createHash } from 'node:crypto';

/**
 * SHA-256 (hex) of a text's UTF-8 bytes, or of bytes: the stored hash of API keys, of description
 * texts (with every description row and as the text half of the embedding cache key), and of a
 * stored image's bytes (the library's dedup key).
 */
export const sha256Hex = (data: string | Uint8Array): string => createHash('sha256').update(data).digest('hex');
