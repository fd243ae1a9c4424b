/**
 * Normalisation and validation of the names and texts admins type: tag names, aliases,
 * names in other languages, vocabulary names and hand-written descriptions; and of the
 * searches clients type to find them.
 */
import { unstorableText } from '../../core/text.ts';

export const MAX_TAG_NAME_LENGTH = 100;
export const MAX_VOCABULARY_NAME_LENGTH = 100;
export const MAX_DESCRIPTION_LENGTH = 1000;
/** Longest tag search: a longer text cannot be part of any name or alias. */
export const MAX_SEARCH_LENGTH = MAX_TAG_NAME_LENGTH;

/** Why an item was refused; `code` is an ErrorCode value. */
export interface ItemProblem {
  code: 'BAD_USER_INPUT' | 'CONFLICT' | 'NOT_FOUND';
  message: string;
}

export type Checked<T> = ({ ok: true } & T) | { ok: false; problem: ItemProblem };

/** Unicode white space, including the no-break and ideographic spaces people paste. */
const SPACES = /[\s\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]+/gu;

/** NFC, trimmed, runs of white space collapsed to one space. */
export function normalizeText(raw: string): string {
  return raw.normalize('NFC').replace(SPACES, ' ').trim();
}

/** The comparison key of a name: normalised, then case-folded (lower case, NFC again). */
export function nameKey(normalized: string): string {
  return normalized.toLowerCase().normalize('NFC');
}

/**
 * Letters (any script), combining marks, digits, spaces and a little punctuation that real tag
 * names use ("3D glasses", "rock 'n' roll", "t-shirt", "AT&T", "C++", "pH 7.0"). No quotes,
 * brackets of other kinds, slashes-as-paths, control or format characters: a tag name is also
 * quoted into LLM prompts and must not be able to break out of its quotes.
 */
const TAG_NAME = /^[\p{L}\p{N}][\p{L}\p{M}\p{N} '’\-_.,&()+:#°%!?]*$/u;

/** A string, normalised, 1…max characters (code points); `printable` also refuses control and format characters. */
function checkText(raw: unknown, what: string, max: number, printable: boolean): Checked<{ text: string }> {
  if (typeof raw !== 'string') return bad(`${what} must be a string`);
  const unstorable = unstorableText(raw);
  if (unstorable) return bad(`${what} ${unstorable}`);
  const text = normalizeText(raw);
  if (text.length === 0) return bad(`${what} is empty`);
  if ([...text].length > max) return bad(`${what} is longer than ${max} characters`);
  if (printable && /[\p{Cc}\p{Cf}\p{Co}\p{Cs}]/u.test(text)) return bad(`${what} contains control characters`);
  return { ok: true, text };
}

export function checkTagName(raw: unknown, what = 'name'): Checked<{ name: string; key: string }> {
  const c = checkText(raw, what, MAX_TAG_NAME_LENGTH, false);
  if (!c.ok) return c;
  const name = c.text;
  if (!TAG_NAME.test(name)) {
    return bad(`${what} "${name}" must start with a letter or digit and contain only letters, digits, spaces and - ' . , & ( ) + : # ° % ! ?`);
  }
  return { ok: true, name, key: nameKey(name) };
}

/** Names in other languages: any printable text (they never reach a prompt), same length limit. */
export function checkLocalizedName(raw: unknown): Checked<{ name: string }> {
  const c = checkText(raw, 'name', MAX_TAG_NAME_LENGTH, true);
  return c.ok ? { ok: true, name: c.text } : c;
}

const LANGUAGE = /^[a-z]{2,3}(?:-[a-z0-9]{2,8}){0,3}$/;

/** BCP 47 language tag, stored lower-case with dashes ("pt_BR" → "pt-br"). */
export function checkLanguage(raw: unknown): Checked<{ language: string }> {
  if (typeof raw !== 'string') return bad('language must be a string');
  const language = raw.trim().toLowerCase().replace(/_/g, '-');
  if (!LANGUAGE.test(language)) return bad(`language "${raw}" is not a BCP 47 language tag such as "zh", "fr" or "pt-br"`);
  return { ok: true, language };
}

export function checkVocabularyName(raw: unknown): Checked<{ name: string }> {
  const c = checkText(raw, 'name', MAX_VOCABULARY_NAME_LENGTH, true);
  return c.ok ? { ok: true, name: c.text } : c;
}

/** A hand-written description: normalised like names, 1…1000 characters, no control characters. */
export function checkDescriptionText(raw: unknown): Checked<{ text: string }> {
  return checkText(raw, 'description', MAX_DESCRIPTION_LENGTH, true);
}

/**
 * A search of tag names and aliases: normalised and case-folded as names are (so it compares
 * with their keys), at most MAX_SEARCH_LENGTH characters. Empty or blank: no filter (`key`
 * undefined). The repository matches it literally; `%` and `_` are characters like any other.
 */
export function checkSearch(raw: unknown): Checked<{ key: string | undefined }> {
  if (typeof raw !== 'string') return bad('search must be a string');
  // Before normalising: a long text is refused without scanning all of it (4 UTF-16 units a
  // character leave room for decomposed accents and the blanks normalising drops).
  if (raw.length > 4 * MAX_SEARCH_LENGTH) return bad(`search is longer than ${MAX_SEARCH_LENGTH} characters`);
  const unstorable = unstorableText(raw);
  if (unstorable) return bad(`search ${unstorable}`);
  const text = normalizeText(raw);
  if ([...text].length > MAX_SEARCH_LENGTH) return bad(`search is longer than ${MAX_SEARCH_LENGTH} characters`);
  return { ok: true, key: text.length > 0 ? nameKey(text) : undefined };
}

export function checkThreshold(raw: unknown): Checked<{ threshold: number }> {
  if (typeof raw !== 'number' || !Number.isFinite(raw) || raw <= 0 || raw >= 1) return bad('threshold must be a number between 0 and 1 (exclusive)');
  return { ok: true, threshold: raw };
}

function bad(message: string): { ok: false; problem: ItemProblem } {
  return { ok: false, problem: { code: 'BAD_USER_INPUT', message } };
}
