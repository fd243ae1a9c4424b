import { createHash } from 'node:crypto';

/**
 * SHA-256 (hex) of a text's UTF-8 bytes: the stored hash of API keys, and of description texts
 * (with every description row and as the text half of the embedding cache key).
 */
export const sha256Hex = (text: string): string => createHash('sha256').update(text, 'utf8').digest('hex');
