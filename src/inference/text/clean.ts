/**
 * CLIP's text clean-up before BPE, reproduced in TypeScript:
 *
 *   basic_clean:      ftfy.fix_text → html.unescape → html.unescape → strip
 *   whitespace_clean: every run of white space → one space, strip
 *   then lower-case.
 *
 * ftfy is Python-only; `fixText` implements the parts of it that change real text (HTML
 * entities, mojibake of UTF-8 read as Latin-1/Windows-1252, C1 controls, Latin
 * ligatures, full/half-width forms, curly quotes, line breaks, terminal escapes, control
 * characters, NFC) with ftfy's segmenting rules. "White space" means Python's
 * `str.isspace()`, not JavaScript's `\s` (they differ on U+FEFF, U+0085 and U+001C–1F).
 */
import { HTML5_ENTITIES } from './data/html-entities.ts';
import { CP1252_80_9F, fixC1Controls, fixMojibake } from './mojibake.ts';

/** Python's `str.isspace()` characters, as a regex character-class body. */
export const PY_WHITESPACE_CLASS =
  '\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';

const WHITESPACE_RUN = new RegExp(`[${PY_WHITESPACE_CLASS}]+`, 'g');
const LEADING_WS = new RegExp(`^[${PY_WHITESPACE_CLASS}]+`);
const TRAILING_WS = new RegExp(`[${PY_WHITESPACE_CLASS}]+$`);

const has = (o: object, k: string) => Object.prototype.hasOwnProperty.call(o, k);

// ---------------------------------------------------------------------------------------
// Python's html.unescape

/** Numeric references that HTML5 redirects (0x80–0x9F read as Windows-1252, NUL, CR). */
const REDIRECTED_CHARREFS: ReadonlyMap<number, string> = (() => {
  const map = new Map<number, string>([
    [0x00, '\ufffd'],
    [0x0d, '\r'],
  ]);
  CP1252_80_9F.forEach((c, i) => map.set(0x80 + i, c));
  return map;
})();

/** Code points that a numeric reference may not produce: they decode to nothing. */
function isDroppedCodePoint(n: number): boolean {
  return (
    (n >= 0x01 && n <= 0x08) ||
    n === 0x0b ||
    (n >= 0x0e && n <= 0x1f) ||
    (n >= 0x7f && n <= 0x9f) ||
    (n >= 0xfdd0 && n <= 0xfdef) ||
    (n & 0xfffe) === 0xfffe
  );
}

function decodeNumericRef(body: string): string {
  const hex = body[1] === 'x' || body[1] === 'X';
  const digits = body.slice(hex ? 2 : 1).replace(/;$/, '').replace(/^0+/, '');
  // Anything with more than 8 significant digits is beyond U+10FFFF in either base.
  const n = digits.length > 8 ? Infinity : digits === '' ? 0 : parseInt(digits, hex ? 16 : 10);
  const redirected = REDIRECTED_CHARREFS.get(n);
  if (redirected !== undefined) return redirected;
  if ((n >= 0xd800 && n <= 0xdfff) || n > 0x10ffff) return '\ufffd';
  if (isDroppedCodePoint(n)) return '';
  return String.fromCodePoint(n);
}

const CHARREF = /&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)/gu;

/** Python's `html.unescape`: named references with or without ';' (longest legacy prefix), numeric ones. */
export function pyHtmlUnescape(text: string): string {
  if (!text.includes('&')) return text;
  return text.replace(CHARREF, (_m, body: string) => {
    if (body[0] === '#') return decodeNumericRef(body);
    if (has(HTML5_ENTITIES, body)) return HTML5_ENTITIES[body]!;
    // Legacy names without ';' match as a prefix ("&ampx" → "&x").
    for (let x = body.length - 1; x > 1; x--) {
      const prefix = body.slice(0, x);
      if (has(HTML5_ENTITIES, prefix)) return HTML5_ENTITIES[prefix]! + body.slice(x);
    }
    return '&' + body;
  });
}

// ---------------------------------------------------------------------------------------
// ftfy's fixes

/**
 * ftfy decodes only entities that end in ';' (so "AT&T" or "this&not that" survive), plus
 * upper-cased forms of lower-case names ("&EACUTE;" → "É") when those mean nothing else.
 */
const FTFY_ENTITIES: ReadonlyMap<string, string> = (() => {
  const map = new Map<string, string>();
  for (const [name, value] of Object.entries(HTML5_ENTITIES)) {
    if (!name.endsWith(';')) continue;
    map.set('&' + name, value);
    if (name === name.toLowerCase()) {
      const upper = '&' + name.toUpperCase();
      if (pyHtmlUnescape(upper) === upper) map.set(upper, value.toUpperCase());
    }
  }
  return map;
})();

function unescapeEntities(text: string): string {
  if (!text.includes('&')) return text;
  return text.replace(/&#?[0-9A-Za-z]{1,24};/g, (ref) => {
    const named = FTFY_ENTITIES.get(ref);
    if (named !== undefined) return named;
    if (ref.startsWith('&#')) {
      const decoded = pyHtmlUnescape(ref);
      return decoded.includes(';') ? ref : decoded;
    }
    return ref;
  });
}

const LIGATURES: Readonly<Record<string, string>> = {
  'Ĳ': 'IJ', 'ĳ': 'ij', 'ŉ': 'ʼn',
  'Ǳ': 'DZ', 'ǲ': 'Dz', 'ǳ': 'dz', 'Ǆ': 'DŽ', 'ǅ': 'Dž', 'ǆ': 'dž',
  'Ǉ': 'LJ', 'ǈ': 'Lj', 'ǉ': 'lj', 'Ǌ': 'NJ', 'ǋ': 'Nj', 'ǌ': 'nj',
  'ﬀ': 'ff', 'ﬁ': 'fi', 'ﬂ': 'fl', 'ﬃ': 'ffi', 'ﬄ': 'ffl', 'ﬅ': 'ſt', 'ﬆ': 'st',
};
const LIGATURE_RE = new RegExp(`[${Object.keys(LIGATURES).join('')}]`, 'g');

/** Halfwidth/fullwidth forms (U+FF01–U+FFEF) → their NFKC form, ideographic space → space. */
const WIDTH_RE = /[\u3000\uff01-\uffef]/g;
const widthReplacement = (c: string) => (c === '\u3000' ? ' ' : c.normalize('NFKC'));

// ESC [ params letter — ftfy's pattern uses Python's Unicode-aware \d.
// eslint-disable-next-line no-control-regex
const TERMINAL_ESCAPE = /\x1b\[(?:\p{Nd}|;)*[a-zA-Z]/gu;
// eslint-disable-next-line no-control-regex
const CONTROL_CHARS = /[\x00-\x08\x0b\x0e-\x1f\x7f\u206a-\u206f\ufeff\ufff9-\ufffc]/g;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

function fixSegmentOnce(text: string, unescape: boolean): string {
  if (unescape) text = unescapeEntities(text);
  text = fixMojibake(text);
  text = fixC1Controls(text);
  text = text.replace(LIGATURE_RE, (c) => LIGATURES[c]!);
  text = text.replace(WIDTH_RE, widthReplacement);
  text = text.replace(/[\u02bc\u2018-\u201b]/g, "'").replace(/[\u201c-\u201f]/g, '"');
  text = text.replace(/\r\n|[\r\u2028\u2029\u0085]/g, '\n');
  text = text.replace(LONE_SURROGATE, '\ufffd');
  text = text.replace(TERMINAL_ESCAPE, '');
  text = text.replace(CONTROL_CHARS, '');
  return text.normalize('NFC');
}

/** Plain printable ASCII without '&' is left alone by every fix: skip them all. */
const NOTHING_TO_FIX = /^[\x20-\x25\x27-\x7e\n\t]*$/;

/**
 * ftfy's `fix_text` with its default configuration, to the extent described above. The
 * text is fixed line by line; HTML entities are decoded unless a '<' has appeared (then
 * the text is taken to be HTML and entities are kept, for that line and all after it).
 */
export function fixText(text: string): string {
  if (NOTHING_TO_FIX.test(text)) return text;
  let out = '';
  let unescape = true;
  for (let pos = 0; pos < text.length; ) {
    const nl = text.indexOf('\n', pos);
    const end = nl === -1 ? text.length : nl + 1;
    let segment = text.slice(pos, end);
    if (segment.includes('<')) unescape = false;
    for (let round = 0; round < 16; round++) {
      const fixed = fixSegmentOnce(segment, unescape);
      if (fixed === segment) break;
      segment = fixed;
    }
    out += segment;
    pos = end;
  }
  return out;
}

/** CLIP's `basic_clean` then `whitespace_clean`, without the lower-casing. */
export function clipClean(text: string): string {
  const basic = pyHtmlUnescape(pyHtmlUnescape(fixText(text)));
  return basic.replace(WHITESPACE_RUN, ' ').replace(LEADING_WS, '').replace(TRAILING_WS, '');
}

/** The exact string CLIP's tokenizer splits into words: cleaned and lower-cased. */
export function clipCleanLower(text: string): string {
  return clipClean(text).toLowerCase();
}
