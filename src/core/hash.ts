import { createHash } from 'node:crypto';

/**
 * SHA-256 (hex) of a text's UTF-8 bytes: stored with every description row and the text half
 * of the embedding cache key.
 */
export const sha256Hex = (text: string): string => createHash('sha256').update(text, 'utf8').digest('hex');
