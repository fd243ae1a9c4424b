/**
 * Text that the database cannot store. PostgreSQL's `text` refuses U+0000, and a UTF-16 string
 * with an unpaired surrogate has no UTF-8 form (the driver would silently write U+FFFD
 * instead). JSON can carry both (`"\u0000"`, `"\ud800"`), so every text that arrives from a
 * client is checked for them before anything stores or compares it.
 */

/** NUL, or a surrogate that is not half of a pair (with the `u` flag a pair is one code point). */
const UNSTORABLE = /[\0\p{Cs}]/u;

/** Why `text` cannot be stored, or undefined when it can. */
export function unstorableText(text: string): string | undefined {
  const found = UNSTORABLE.exec(text);
  if (!found) return undefined;
  return found[0] === '\0' ? 'contains a NUL character (U+0000)' : 'contains an unpaired UTF-16 surrogate (not valid Unicode)';
}
