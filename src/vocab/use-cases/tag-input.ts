/** Validation of tags as admins give them: the whole item of a bulk add, and its lists of aliases and names. */
import {
  checkDescriptionText,
  checkLanguage,
  checkLocalizedName,
  checkTagName,
  checkThreshold,
  type ItemProblem,
} from './names.ts';

export interface TagInput {
  name: string;
  /** Hand-written descriptions (source MANUAL); omitted or empty: template descriptions. */
  descriptions?: readonly string[] | null;
  /** Threshold override in (0, 1). */
  threshold?: number | null;
  aliases?: readonly string[] | null;
  names?: readonly { language: string; name: string }[] | null;
}

/** A valid item of a bulk add, normalised. */
export interface PreparedTag {
  /** Position of the item in the request. */
  index: number;
  name: string;
  key: string;
  threshold: number | null;
  aliases: { name: string; key: string }[];
  names: { language: string; name: string }[];
  /** Null: template descriptions. */
  descriptions: string[] | null;
}

export const MAX_ALIASES_PER_TAG = 100;

export function prepareTag(input: TagInput, index: number, maxDescriptions: number): PreparedTag | { problem: ItemProblem } {
  if (!input || typeof input !== 'object') return { problem: { code: 'BAD_USER_INPUT', message: 'a tag must be an object' } };
  const name = checkTagName(input.name);
  if (!name.ok) return { problem: name.problem };
  let threshold: number | null = null;
  if (input.threshold !== undefined && input.threshold !== null) {
    const t = checkThreshold(input.threshold);
    if (!t.ok) return { problem: t.problem };
    threshold = t.threshold;
  }
  const aliases = checkAliases(input.aliases, name.key);
  if ('problem' in aliases) return aliases;
  const names = checkNames(input.names);
  if ('problem' in names) return names;
  let descriptions: string[] | null = null;
  if (input.descriptions && input.descriptions.length > 0) {
    if (input.descriptions.length > maxDescriptions) {
      return { problem: { code: 'BAD_USER_INPUT', message: `at most ${maxDescriptions} descriptions per tag` } };
    }
    descriptions = [];
    for (const raw of input.descriptions) {
      const d = checkDescriptionText(raw);
      if (!d.ok) return { problem: d.problem };
      descriptions.push(d.text);
    }
  }
  return { index, name: name.name, key: name.key, threshold, aliases: aliases.list, names: names.list, descriptions };
}

/** Aliases normalised; the tag's own name and repeats are dropped. */
export function checkAliases(raw: readonly string[] | null | undefined, ownKey: string): { list: { name: string; key: string }[] } | { problem: ItemProblem } {
  const list: { name: string; key: string }[] = [];
  if (!raw) return { list };
  if (!Array.isArray(raw)) return { problem: { code: 'BAD_USER_INPUT', message: 'aliases must be a list' } };
  if (raw.length > MAX_ALIASES_PER_TAG) return { problem: { code: 'BAD_USER_INPUT', message: `at most ${MAX_ALIASES_PER_TAG} aliases per tag` } };
  const seen = new Set([ownKey]);
  for (const a of raw) {
    const c = checkTagName(a, 'alias');
    if (!c.ok) return { problem: c.problem };
    if (seen.has(c.key)) continue; // the tag's own name or a repeat: nothing to add
    seen.add(c.key);
    list.push({ name: c.name, key: c.key });
  }
  return { list };
}

/** Names in other languages, one per language. */
export function checkNames(raw: readonly { language: string; name: string }[] | null | undefined): { list: { language: string; name: string }[] } | { problem: ItemProblem } {
  const list: { language: string; name: string }[] = [];
  if (!raw) return { list };
  if (!Array.isArray(raw)) return { problem: { code: 'BAD_USER_INPUT', message: 'names must be a list' } };
  const languages = new Set<string>();
  for (const entry of raw) {
    const l = checkLanguage(entry?.language);
    if (!l.ok) return { problem: l.problem };
    const n = checkLocalizedName(entry?.name);
    if (!n.ok) return { problem: n.problem };
    if (languages.has(l.language)) return { problem: { code: 'BAD_USER_INPUT', message: `two names in the language "${l.language}"` } };
    languages.add(l.language);
    list.push({ language: l.language, name: n.name });
  }
  return { list };
}
