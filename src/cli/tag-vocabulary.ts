import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';

/** An open-set vocabulary read from a file: tag names and their descriptions. */
export interface VocabularyFile {
  names: string[];
  descriptions: string[][];
  /** Hash of the file's content, part of the label bank's cache key. */
  contentHash: string;
}

/** Description used for a tag listed without descriptions (upstream's first prompt). */
export const defaultDescription = (tag: string) => `a photo of a ${tag}.`;

/**
 * Reads a vocabulary JSON in any of these shapes:
 *   {"tag": ["description", ...], ...}            (object)
 *   [{"tag": ["description", ...]}, ...]           (upstream's open-set files)
 *   ["tag", ...]                                   (names only: "a photo of a {tag}.")
 * A description list may also be a single string.
 */
export async function readVocabularyFile(file: string): Promise<VocabularyFile> {
  const text = await readFile(file, 'utf8');
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message})`);
  }
  const entries: Array<[string, unknown]> = [];
  if (Array.isArray(raw)) {
    raw.forEach((item, i) => {
      if (typeof item === 'string') entries.push([item, [defaultDescription(item)]]);
      else if (item && typeof item === 'object' && !Array.isArray(item)) entries.push(...Object.entries(item));
      else throw new Error(`${file}: entry ${i} is neither a tag name nor an object of tags`);
    });
  } else if (raw && typeof raw === 'object') {
    entries.push(...Object.entries(raw));
  } else {
    throw new Error(`${file}: expected an object or an array of tags`);
  }
  if (entries.length === 0) throw new Error(`${file}: no tags`);

  const seen = new Set<string>();
  const names: string[] = [];
  const descriptions: string[][] = [];
  for (const [name, value] of entries) {
    const tag = name.trim();
    if (!tag) throw new Error(`${file}: a tag has an empty name`);
    if (seen.has(tag)) throw new Error(`${file}: tag "${tag}" appears twice`);
    seen.add(tag);
    const list = (typeof value === 'string' ? [value] : value) as unknown;
    if (!Array.isArray(list) || list.some((d) => typeof d !== 'string')) {
      throw new Error(`${file}: descriptions of "${tag}" must be a string or a list of strings`);
    }
    const cleaned = (list as string[]).map((d) => d.trim()).filter(Boolean);
    names.push(tag);
    descriptions.push(cleaned.length > 0 ? cleaned : [defaultDescription(tag)]);
  }
  return { names, descriptions, contentHash: createHash('sha256').update(text).digest('hex') };
}
