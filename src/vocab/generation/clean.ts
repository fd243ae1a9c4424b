import { decodeHtmlEntities } from '../../inference/index.ts';
import { normalizeText } from '../use-cases/names.ts';

/**
 * Tokens each text needs in CLIP's text encoder, start and end tokens included, not cut to the
 * context; one call counts many texts (the engine's `countTokens`, run in its workers).
 */
export type TokenCounter = (texts: readonly string[]) => Promise<number[]>;

/** Why an answer is not kept: nothing left, a refusal, or markup that would not come off. */
export type DropReason = 'empty' | 'refusal' | 'markup';

export type CleanedAnswer = { ok: true; text: string; cut: boolean } | { ok: false; reason: DropReason };

/** Answers that decline instead of describing ("I'm sorry, I can't…", "As an AI…"). */
const REFUSAL_START =
  /^(?:i'm sorry|i am sorry|sorry\b|i apologi[sz]e|my apologies|i can't|i cannot|i can not|i'm unable|i am unable|i'm not able|i am not able|i won't|i will not|as an ai\b|unfortunately\b)/;
const REFUSAL_ANYWHERE =
  /\b(?:as an ai(?: language)? model|i (?:can't|cannot|can not|am unable to|won't) (?:help|assist|provide|comply|describe|do that)|i'm (?:unable|not able) to (?:help|assist|provide|describe))\b/;

const LEADING_LABEL = /^(?:(?:[-*•]|\d{1,2}[.)])\s+|(?:answer|description|response)\s*:\s*)/i;
const WRAPPING_QUOTES = /^["'“”‘’«»](.*)["'“”‘’«»]$/s;

/**
 * Longest answer looked at, in characters: CLIP reads 77 tokens (a few hundred characters) and
 * the request asks for 77; a server that sends more has the rest cut off before cleaning.
 */
export const MAX_ANSWER_CHARS = 8_192;

/** Elements whose content is never visible text: dropped with it (to the end when unclosed). */
const HIDDEN_ELEMENT =
  /<(script|style|iframe|object|embed|noscript|template|textarea|title|head|svg|math|xmp|noembed|noframes)\b[^>]*>[\s\S]*?(?:<\/\1\s*>|$)/gi;
/** Comments, CDATA sections, declarations and processing instructions (to the end when unclosed). */
const COMMENT = /<!--[\s\S]*?(?:-->|$)|<!\[CDATA\[[\s\S]*?(?:\]\]>|$)|<[!?][^>]*(?:>|$)/g;
/** A start or end tag, attributes included; one cut off at the end of the answer too. */
const TAG = /<\/?[a-z][^<>]*(?:>|$)/gi;
/**
 * Anything that still looks like a tag, comment or declaration after the clean-up rounds, space
 * after the `<` included (`< /script>`, what is left of `<<script>script>`): refused.
 */
const TAG_LEFT = /<\s*\/?\s*[a-z!?]/i;
/** Control characters (white space aside) and bidirectional overrides: never part of a description. */
const CONTROLS = /(?![\t\n\r])[\p{Cc}\u202a-\u202e\u2066-\u2069]/gu;
const ROUNDS = 3;

/**
 * An answer without HTML: hidden elements with their content, comments and tags removed,
 * character references decoded, and again (an entity can hide a tag: `&lt;script&gt;`), for
 * at most three rounds. Undefined when markup is still left after them, a tag or a reference
 * that would decode once more: the answer is refused, not stored half cleaned.
 */
export function stripMarkup(raw: string): { text: string; changed: boolean } | undefined {
  let text = raw.replace(CONTROLS, ' ');
  let changed = text !== raw;
  for (let round = 0; round < ROUNDS; round++) {
    const before = text;
    text = decodeHtmlEntities(text.replace(HIDDEN_ELEMENT, ' ').replace(COMMENT, ' ').replace(TAG, ' ')).replace(CONTROLS, ' ');
    if (text === before) break;
    changed = true;
  }
  if (TAG_LEFT.test(text) || decodeHtmlEntities(text) !== text) return undefined;
  return { text, changed };
}

/**
 * LLM answers → descriptions, or the reason each is dropped. Removes markup (HTML elements,
 * comments, character references; an answer whose markup will not come off is refused), trims
 * and collapses white space, removes list markers, labels and wrapping quotes, drops empty
 * answers and refusals, and cuts what is left to the text encoder's context at a word boundary
 * (preferring a sentence end) so the stored text is what the encoder sees. Tokens are counted
 * in a few batched calls for all answers together, not one call per answer.
 */
export async function cleanAnswers(raws: readonly unknown[], options: { maxTokens: number; countTokens?: TokenCounter }): Promise<CleanedAnswer[]> {
  const cleaned = raws.map(cleanText);
  const { countTokens } = options;
  if (!countTokens) return cleaned.map((c) => (c.ok ? { ...c, cut: false } : c));
  const kept = cleaned.flatMap((c) => (c.ok ? [c.text] : []));
  const cut = await cutToTokens(kept, options.maxTokens, countTokens);
  let k = 0;
  return cleaned.map((c) => {
    if (!c.ok) return c;
    const text = cut[k++]!;
    return { ok: true, text, cut: text !== c.text };
  });
}

function cleanText(raw: unknown): { ok: true; text: string } | { ok: false; reason: DropReason } {
  if (typeof raw !== 'string') return { ok: false, reason: 'empty' };
  const stripped = stripMarkup(raw.slice(0, MAX_ANSWER_CHARS));
  if (!stripped) return { ok: false, reason: 'markup' };
  let text = normalizeText(stripped.text);
  // "a <b>red</b> fox </p>." leaves "a red fox ." behind
  if (stripped.changed) text = text.replace(/ +([.,;:!?])/g, '$1');
  for (let i = 0; i < 3; i++) {
    const before = text;
    text = text.replace(LEADING_LABEL, '').trim();
    const quoted = WRAPPING_QUOTES.exec(text);
    if (quoted) text = quoted[1]!.trim();
    if (text === before) break;
  }
  if (!/[\p{L}\p{N}]/u.test(text)) return { ok: false, reason: 'empty' };
  const lower = text.toLowerCase().replace(/[’‘]/g, "'");
  if (REFUSAL_START.test(lower) || REFUSAL_ANYWHERE.test(lower)) return { ok: false, reason: 'refusal' };
  return { ok: true, text };
}

/**
 * Each text's longest prefix of whole words within `maxTokens` (CLIP counts start and end
 * tokens), ending at the last sentence end inside it when that keeps at least 60% of the
 * words; a first word that is too long on its own is cut between characters. At most three
 * counting calls in all: the whole texts, then every word prefix of those too long, then
 * every character prefix of the too-long first words; the binary searches read those counts.
 */
export async function cutToTokens(texts: readonly string[], maxTokens: number, countTokens: TokenCounter): Promise<string[]> {
  const out = [...texts];
  const whole = await countTokens(texts);
  const long = texts.flatMap((text, i) => (whole[i]! > maxTokens ? [{ i, words: text.split(' ') }] : []));
  if (long.length === 0) return out;

  // prefixes of 1 … n−1 words: the whole text (n) is known not to fit
  const wordCounts = await countsOfPrefixes(long.map((t) => t.words.slice(0, -1)), ' ', countTokens);
  const oneWord: { i: number; chars: string[] }[] = [];
  long.forEach(({ i, words }, j) => {
    const fits = (k: number) => wordCounts[j]![k - 1]! <= maxTokens;
    const lo = lastFitting(words.length - 1, fits);
    if (lo === 0) oneWord.push({ i, chars: [...words[0]!] }); // one enormous "word": cut characters
    else out[i] = atSentenceEnd(words, lo);
  });
  if (oneWord.length === 0) return out;

  const charCounts = await countsOfPrefixes(oneWord.map((t) => t.chars), '', countTokens);
  oneWord.forEach(({ i, chars }, j) => {
    const a = lastFitting(chars.length, (k) => charCounts[j]![k - 1]! <= maxTokens);
    out[i] = chars.slice(0, a).join('');
  });
  return out;
}

/** Token counts of every prefix (1 … all parts, joined by `separator`) of each list, in one call. */
async function countsOfPrefixes(lists: readonly (readonly string[])[], separator: string, countTokens: TokenCounter): Promise<number[][]> {
  const prefixes = lists.map((parts) => {
    let prefix = '';
    return parts.map((part, k) => (prefix = k === 0 ? part : prefix + separator + part));
  });
  const counts = await countTokens(prefixes.flat());
  let offset = 0;
  return prefixes.map((p) => counts.slice(offset, (offset += p.length)));
}

/** The largest k in 0 … hi with fits(k), by binary search (fits(0) is taken as true). */
function lastFitting(hi: number, fits: (k: number) => boolean): number {
  let lo = 0;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (fits(mid)) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** The first `count` words, ending at a sentence end when one keeps at least 60% of them. */
function atSentenceEnd(words: readonly string[], count: number): string {
  let end = count;
  for (let j = count - 1; j >= Math.ceil(count * 0.6) - 1 && j >= 0; j--) {
    if (/[.!?]["')\]]?$/.test(words[j]!)) {
      end = j + 1;
      break;
    }
  }
  return words
    .slice(0, end)
    .join(' ')
    .replace(/[\s,;:–—-]+$/u, '');
}

/** Key that finds near-identical answers (case, spacing and final punctuation ignored). */
export const answerKey = (text: string) =>
  text
    .toLowerCase()
    .replace(/[^\p{L}\p{N}]+/gu, ' ')
    .trim();
