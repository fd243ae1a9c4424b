/**
 * Repairs the most common mojibake: UTF-8 text that was decoded as Latin-1 or
 * Windows-1252 ("cafÃ©", "itâ€™s", "Ã¢â‚¬â„¢" when it happened twice).
 *
 * CLIP cleans every text with ftfy before tokenizing, and ftfy repairs such text, so the
 * tokenizer must too to produce the same ids. This is a narrower, independent heuristic:
 * it only considers UTF-8 read as Latin-1/Windows-1252 (ftfy also tries Cyrillic, Greek,
 * Central-European, MacRoman and CP437 code pages). It finds the runs of characters that
 * re-encode to well-formed UTF-8 sequences and judges each one: when every non-ASCII
 * character of the text belongs to such a run, one run that correct text would not contain
 * is enough to decode them all; otherwise only groups containing such a run are decoded.
 * Text without such runs is never touched.
 */

/**
 * Windows-1252 bytes 0x80–0x9F (the rest of the code page equals Latin-1). The five
 * bytes that Windows-1252 leaves undefined keep their C1 meaning, as in WHATWG's
 * decoder ("sloppy" Windows-1252). Written out because Node's TextDecoder decodes
 * 'windows-1252' as plain Latin-1.
 */
export const CP1252_80_9F: readonly string[] = Array.from(
  '€\u0081‚ƒ„…†‡ˆ‰Š‹Œ\u008dŽ\u008f\u0090‘’“”•–—˜™š›œ\u009džŸ',
);

/** Byte value of each character in Latin-1 ∪ Windows-1252. */
const CHAR_TO_BYTE: ReadonlyMap<number, number> = (() => {
  const map = new Map<number, number>();
  for (let b = 0; b < 0x100; b++) map.set(b, b);
  CP1252_80_9F.forEach((c, i) => map.set(c.charCodeAt(0), 0x80 + i));
  return map;
})();

const codePoints = (chars: string) => new Set(Array.from(chars, (c) => c.codePointAt(0)!));

/**
 * Second characters that make "Â"/"Ã" + that character suspicious: everything except
 * the few (¥ … ’ Ž Œ) that plausibly follow a capital Ã in correct text.
 */
const INNOCENT_AFTER_A_TILDE = codePoints('¥…’ŽŒ');

/**
 * Characters that correct text almost never puts right after a letter, but that
 * UTF-8 continuation bytes turn into all the time (C1 controls, spacing accents, rare
 * Windows-1252 punctuation, ordinal indicators...).
 */
const MOJIBAKE_ONLY = codePoints(
  '\u0080\u0081\u0082\u0083\u0084\u0085\u0086\u0087\u0088\u0089\u008a\u008b\u008c\u008d\u008e\u008f' +
    '\u0090\u0091\u0092\u0093\u0094\u0095\u0096\u0097\u0098\u0099\u009a\u009b\u009c\u009d\u009e\u009f' +
    '¦¤¨¬¯¸ƒˆ˜†‡‰ªºŒœŠšŽžŸ‚„‹›',
);

/** Punctuation that opens or closes a phrase; right before a letter it betrays mojibake. */
const PHRASE_PUNCTUATION = codePoints('¡«¿©‘‚“„•‹®»”›™');

/** The Cyrillic (Ð/Ñ) and Greek (Î/Ï) leads, with the second characters that give them away. */
const CYRILLIC_GREEK_LEADS = codePoints('ÐÑÎÏ');
const CYRILLIC_GREEK_GIVEAWAYS = codePoints('€œŠš¢£Ÿž\u00a0\u00ad®©°·»¡«¿‘‚“„•‹”›™–—´');

/** Continuations that are ordinary punctuation; a 3-byte candidate made only of them is ignored. */
const PLAIN_CONTINUATIONS = codePoints('´¨°·\u00a0«»²³¹ªº');

const isWordChar = (c: string | undefined) => c !== undefined && /[\p{L}\p{N}]/u.test(c);

interface Candidate {
  start: number; // UTF-16 index of the lead character
  end: number; // exclusive
  decoded: string;
  suspicious: boolean;
}

const isContinuation = (b: number | undefined): b is number => b !== undefined && b >= 0x80 && b <= 0xbf;

/** Decodes the UTF-8 sequence in `bytes` if it is complete and well-formed. */
function decodeSequence(bytes: readonly number[]): string | null {
  const [b0, b1, b2, b3] = bytes;
  if (b0 === undefined || !isContinuation(b1)) return null;
  if (b0 >= 0xc2 && b0 <= 0xdf) return String.fromCodePoint(((b0 & 0x1f) << 6) | (b1 & 0x3f));
  if (!isContinuation(b2)) return null;
  if (b0 >= 0xe0 && b0 <= 0xef) {
    if (b0 === 0xe0 && b1 < 0xa0) return null; // overlong
    if (b0 === 0xed && b1 > 0x9f) return null; // surrogate
    return String.fromCodePoint(((b0 & 0x0f) << 12) | ((b1 & 0x3f) << 6) | (b2 & 0x3f));
  }
  if (!isContinuation(b3)) return null;
  if (b0 >= 0xf0 && b0 <= 0xf4) {
    if (b0 === 0xf0 && b1 < 0x90) return null;
    if (b0 === 0xf4 && b1 > 0x8f) return null;
    return String.fromCodePoint(((b0 & 0x07) << 18) | ((b1 & 0x3f) << 12) | ((b2 & 0x3f) << 6) | (b3 & 0x3f));
  }
  return null;
}

function sequenceLength(lead: number): number {
  if (lead >= 0xc2 && lead <= 0xdf) return 2;
  if (lead >= 0xe0 && lead <= 0xef) return 3;
  if (lead >= 0xf0 && lead <= 0xf4) return 4;
  return 0;
}

/** Whether one decodable sequence, seen on its own, is something correct text would not contain. */
function looksLikeMojibake(text: string, start: number, n: number): boolean {
  const lead = text.charCodeAt(start);
  const second = text.charCodeAt(start + 1);
  if (n === 4) return true;
  if (n === 3) {
    if (lead === 0xe2) return true; // â€™ â€œ â€” …: punctuation, the classic case
    return !(PLAIN_CONTINUATIONS.has(second) && PLAIN_CONTINUATIONS.has(text.charCodeAt(start + 2)));
  }
  if (lead === 0xc2 || lead === 0xc3) return !INNOCENT_AFTER_A_TILDE.has(second);
  if (MOJIBAKE_ONLY.has(second)) return true;
  if (CYRILLIC_GREEK_LEADS.has(lead) && CYRILLIC_GREEK_GIVEAWAYS.has(second)) return true;
  return PHRASE_PUNCTUATION.has(second) && isWordChar(text[start + 2]);
}

function findCandidates(text: string): Candidate[] {
  const found: Candidate[] = [];
  for (let i = 0; i < text.length; ) {
    const lead = CHAR_TO_BYTE.get(text.charCodeAt(i));
    const n = lead === undefined ? 0 : sequenceLength(lead);
    if (n > 0 && i + n <= text.length) {
      const bytes = [lead!];
      for (let k = 1; k < n; k++) {
        const b = CHAR_TO_BYTE.get(text.charCodeAt(i + k));
        if (b === undefined) break;
        bytes.push(b);
      }
      const decoded = bytes.length === n ? decodeSequence(bytes) : null;
      if (decoded !== null) {
        found.push({ start: i, end: i + n, decoded, suspicious: looksLikeMojibake(text, i, n) });
        i += n;
        continue;
      }
    }
    i++;
  }
  return found;
}

/**
 * "Ã" + space where the whole text is otherwise mojibake: "à" whose no-break space
 * (byte A0) was turned into a plain space. Returns how many characters that "Ã ..."
 * stands for (1 when the space is a real one that follows "à", 2 when it was the A0
 * itself), or 0.
 */
function lostNoBreakSpace(text: string, i: number): number {
  if (text[i] !== 'Ã' || text[i + 1] !== ' ') return 0;
  return /^(?: |quele|quela|quilo|s )/.test(text.slice(i + 2, i + 7)) ? 2 : 1;
}

/** "Ã " right after a lower-case word (or opening the text) is far likelier "à" than a capital A-tilde. */
const suspiciousLostSpace = (text: string, i: number) => i === 0 || /[a-z] ?$/.test(text.slice(Math.max(0, i - 2), i));

/** One pass of repair; returns the input itself when nothing looked like mojibake. */
function repairOnce(text: string): string {
  const candidates = findCandidates(text);
  if (candidates.length === 0 && !text.includes('Ã ')) return text;

  // Whole-text mode: every non-ASCII character belongs to a decodable sequence, so the
  // text as a whole reads as UTF-8; one suspicious sequence is then evidence enough.
  let covered = true;
  const extra: Candidate[] = [];
  for (let i = 0, k = 0; i < text.length && covered; i++) {
    const c = candidates[k];
    if (c && i === c.start) {
      i = c.end - 1;
      k++;
    } else if (text.charCodeAt(i) >= 0x80) {
      const n = lostNoBreakSpace(text, i);
      if (n > 0) extra.push({ start: i, end: i + n, decoded: 'à', suspicious: suspiciousLostSpace(text, i) });
      else covered = false;
    }
  }
  let chosen: Candidate[];
  if (covered && (candidates.some((c) => c.suspicious) || extra.some((c) => c.suspicious))) {
    chosen = [...candidates, ...extra].sort((a, b) => a.start - b.start);
  } else {
    // Mixed text: repair only groups of adjacent sequences that contain a suspicious one.
    chosen = [];
    for (let k = 0; k < candidates.length; ) {
      let j = k + 1;
      while (j < candidates.length && candidates[j]!.start === candidates[j - 1]!.end) j++;
      const group = candidates.slice(k, j);
      if (group.some((c) => c.suspicious)) chosen.push(...group);
      k = j;
    }
  }
  if (chosen.length === 0) return text;
  let out = '';
  let pos = 0;
  for (const c of chosen) {
    out += text.slice(pos, c.start) + c.decoded;
    pos = c.end;
  }
  return out + text.slice(pos);
}

/** Undoes UTF-8 → Latin-1/Windows-1252 mojibake, repeatedly (it is often applied twice). */
export function fixMojibake(text: string): string {
  // eslint-disable-next-line no-control-regex
  if (!/[^\x00-\x7f]/.test(text)) return text;
  for (let round = 0; round < 4; round++) {
    const next = repairOnce(text);
    if (next === text) break;
    text = next;
  }
  return text;
}

/** Replaces C1 control characters (U+0080–U+009F) by their Windows-1252 meaning. */
export function fixC1Controls(text: string): string {
  return text.replace(/[\u0080-\u009f]/g, (c) => CP1252_80_9F[c.charCodeAt(0) - 0x80]!);
}
