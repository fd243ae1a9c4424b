import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { sha256Hex } from '../core/hash.ts';

/** Key format: `otk_` + 43 base64url characters (256 random bits). Only its SHA-256 is stored. */
const KEY_PREFIX = 'otk_';
const VISIBLE_CHARS = 12;

export interface NewKey {
  /** The whole secret; shown once. */
  readonly key: string;
  /** Non-secret start of the key, safe to list. */
  readonly prefix: string;
  readonly hash: string;
}

/** What is stored of a key: its SHA-256. */
export const hashKey = sha256Hex;

export function generateApiKey(): NewKey {
  const key = KEY_PREFIX + randomBytes(32).toString('base64url');
  return { key, prefix: key.slice(0, VISIBLE_CHARS), hash: hashKey(key) };
}

export const looksLikeApiKey = (s: string) => /^otk_[A-Za-z0-9_-]{43}$/.test(s);

/** Compares secrets in constant time (the platform key is compared, not looked up). */
export function secretEquals(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb);
}
