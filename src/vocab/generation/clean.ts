import { normalizeText } from '../use-cases/names.ts';

/** Tokens a text needs in CLIP's text encoder, start and end tokens included. */
export type TokenCounter = (text: string) => number;

export type CleanedAnswer = { ok: true; text: string; cut: boolean } | { ok: false; reason: 'empty' | 'refusal' };

/** Answers that decline instead of describing ("I'm sorry, I can't…", "As an AI…"). */
const REFUSAL_START =
  /^(?:i'm sorry|i am sorry|sorry\b|i apologi[sz]e|my apologies|i can't|i cannot|i can not|i'm unable|i am unable|i'm not able|i am not able|i won't|i will not|as an ai\b|unfortunately\b)/;
const REFUSAL_ANYWHERE =
  /\b(?:as an ai(?: language)? model|i (?:can't|cannot|can not|am unable to|won't) (?:help|assist|provide|comply|describe|do that)|i'm (?:unable|not able) to (?:help|assist|provide|describe))\b/;

const LEADING_LABEL = /^(?:(?:[-*•]|\d{1,2}[.)])\s+|(?:answer|description|response)\s*:\s*)/i;
const WRAPPING_QUOTES = /^["'“”‘’«»](.*)["'“”‘’«»]$/s;

/**
 * One LLM answer → a description, or the reason it is dropped. Trims and collapses white
 * space, removes list markers, labels and wrapping quotes, drops empty answers and refusals,
 * and cuts what is left to the text encoder's context at a word boundary (preferring a
 * sentence end) so the stored text is what the encoder sees.
 */
export function cleanAnswer(raw: unknown, options: { maxTokens: number; countTokens?: TokenCounter }): CleanedAnswer {
  if (typeof raw !== 'string') return { ok: false, reason: 'empty' };
  let text = normalizeText(raw);
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
  if (!options.countTokens) return { ok: true, text, cut: false };
  const cut = cutToTokens(text, options.maxTokens, options.countTokens);
  return { ok: true, text: cut, cut: cut !== text };
}

/**
 * The longest prefix of whole words within `maxTokens` (CLIP counts start and end tokens);
 * ends at the last sentence end inside it when that keeps at least 60% of the words.
 */
export function cutToTokens(text: string, maxTokens: number, countTokens: TokenCounter): string {
  if (countTokens(text) <= maxTokens) return text;
  const words = text.split(' ');
  const fits = (k: number) => countTokens(words.slice(0, k).join(' ')) <= maxTokens;
  let lo = 0;
  let hi = words.length - 1; // the whole text does not fit
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (fits(mid)) lo = mid;
    else hi = mid - 1;
  }
  if (lo === 0) {
    // one enormous "word": cut characters
    const chars = [...words[0]!];
    let a = 0;
    let b = chars.length;
    while (a < b) {
      const mid = Math.ceil((a + b) / 2);
      if (countTokens(chars.slice(0, mid).join('')) <= maxTokens) a = mid;
      else b = mid - 1;
    }
    return chars.slice(0, a).join('');
  }
  let end = lo;
  for (let j = lo - 1; j >= Math.ceil(lo * 0.6) - 1 && j >= 0; j--) {
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
