/**
 * CLIP's byte-level BPE tokenizer (49,408 tokens, `</w>` marks the end of a word), read
 * from a model pack's `tokenizer.json` and reproducing OpenAI CLIP's `SimpleTokenizer` +
 * `clip.tokenize(..., truncate=True)` id for id.
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import { clipCleanLower, PY_WHITESPACE_CLASS } from './clean.ts';

export const CLIP_SOT = '<|startoftext|>';
export const CLIP_EOT = '<|endoftext|>';
export const DEFAULT_CONTEXT = 77;
const END_OF_WORD = '</w>';

/** The subset of a Hugging Face `tokenizers` JSON file that a CLIP BPE needs. */
export interface TokenizerJson {
  model: {
    type?: string;
    vocab: Record<string, number>;
    /** "a b" strings (older files) or [a, b] pairs (tokenizers ≥ 0.20). */
    merges: Array<string | [string, string]>;
    end_of_word_suffix?: string | null;
    unk_token?: string | null;
  };
  added_tokens?: Array<{ id: number; content: string; special?: boolean }>;
}

export interface EncodedBatch {
  /** [texts.length × context] int64, row-major: SOT, BPE ids, EOT, then zeros. */
  ids: BigInt64Array;
  context: number;
  /** Tokens each text needs including SOT and EOT, before truncation. */
  tokenCounts: Int32Array;
  /** Whether the text was cut to fit the context (its EOT then sits in the last slot). */
  truncated: boolean[];
}

/**
 * CLIP's pre-tokenisation pattern (its special tokens, English contractions, runs of
 * letters, single digits, runs of other symbols). Python's white space, not JS `\s`.
 */
const WORD_PATTERN = new RegExp(
  String.raw`<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^${PY_WHITESPACE_CLASS}\p{L}\p{N}]+`,
  'giu',
);

/**
 * GPT-2/CLIP's reversible byte → printable character map: printable Latin-1 bytes map to
 * themselves, the other 68 bytes to U+0100 onwards in byte order. Returned in CLIP's
 * vocabulary order (printable bytes first).
 */
export function byteLevelAlphabet(): { byte: number; char: string }[] {
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const out: { byte: number; char: string }[] = [];
  for (let b = 0; b < 256; b++) if (printable(b)) out.push({ byte: b, char: String.fromCharCode(b) });
  let next = 0;
  for (let b = 0; b < 256; b++) if (!printable(b)) out.push({ byte: b, char: String.fromCharCode(256 + next++) });
  return out;
}

const BYTE_TO_CHAR: readonly string[] = (() => {
  const table: string[] = new Array(256);
  for (const { byte, char } of byteLevelAlphabet()) table[byte] = char;
  return table;
})();

const utf8 = new TextEncoder();

export class ClipTokenizer {
  readonly vocabSize: number;
  readonly sot: number;
  readonly eot: number;
  private readonly vocab: Map<string, number>;
  private readonly ranks: Map<string, number>;
  private readonly specials: Map<string, number>;
  private readonly cache = new Map<string, readonly number[]>();
  private readonly cacheLimit: number;

  private constructor(
    vocab: Map<string, number>,
    merges: Array<[string, string]>,
    specials: Map<string, number>,
    cacheLimit: number,
  ) {
    this.vocab = vocab;
    this.ranks = new Map(merges.map(([a, b], i) => [`${a} ${b}`, i]));
    this.specials = specials;
    this.cacheLimit = cacheLimit;
    const sot = specials.get(CLIP_SOT) ?? vocab.get(CLIP_SOT);
    const eot = specials.get(CLIP_EOT) ?? vocab.get(CLIP_EOT);
    if (sot === undefined || eot === undefined) {
      throw new Error(`tokenizer has no ${CLIP_SOT} / ${CLIP_EOT} tokens`);
    }
    this.sot = sot;
    this.eot = eot;
    let max = -1;
    for (const id of vocab.values()) if (id > max) max = id;
    for (const id of specials.values()) if (id > max) max = id;
    this.vocabSize = max + 1;
  }

  /** From a parsed `tokenizer.json` (Hugging Face format, CLIP BPE). */
  static fromJson(json: TokenizerJson, opts: { cacheLimit?: number } = {}): ClipTokenizer {
    const model = json?.model;
    if (!model || typeof model.vocab !== 'object' || !Array.isArray(model.merges)) {
      throw new Error('tokenizer.json: expected model.vocab (object) and model.merges (array)');
    }
    if (model.type !== undefined && model.type !== 'BPE') throw new Error(`tokenizer.json: model.type ${model.type} is not BPE`);
    const suffix = model.end_of_word_suffix;
    if (suffix != null && suffix !== END_OF_WORD) {
      throw new Error(`tokenizer.json: end_of_word_suffix ${JSON.stringify(suffix)} is not CLIP's "${END_OF_WORD}"`);
    }
    const vocab = new Map(Object.entries(model.vocab));
    const merges = model.merges.map((m, i): [string, string] => {
      const pair = typeof m === 'string' ? m.split(' ') : m;
      if (pair.length !== 2 || typeof pair[0] !== 'string' || typeof pair[1] !== 'string') {
        throw new Error(`tokenizer.json: merge ${i} is not a pair: ${JSON.stringify(m)}`);
      }
      return [pair[0], pair[1]];
    });
    // CLIP recognises exactly its two markers when they appear literally in a text.
    const specials = new Map<string, number>();
    for (const name of [CLIP_SOT, CLIP_EOT]) {
      const id = json.added_tokens?.find((t) => t.content === name)?.id ?? vocab.get(name);
      if (id !== undefined) specials.set(name, id);
    }
    return new ClipTokenizer(vocab, merges, specials, opts.cacheLimit ?? 200_000);
  }

  static async fromFile(path: string): Promise<ClipTokenizer> {
    return ClipTokenizer.fromJson(JSON.parse(await readFile(path, 'utf8')) as TokenizerJson);
  }

  /**
   * From CLIP's own merges file (`bpe_simple_vocab_16e6.txt.gz`): the vocabulary is the
   * 256 byte characters, the same with `</w>`, each of the first 48,894 merges joined,
   * then SOT (49406) and EOT (49407) — exactly OpenAI's construction.
   */
  static fromClipMergesFile(gzPath: string): ClipTokenizer {
    return ClipTokenizer.fromJson(clipTokenizerJsonFromMerges(gunzipSync(readFileSync(gzPath)).toString('utf8')));
  }

  /** BPE ids of one text (cleaned and lower-cased as CLIP does), without SOT/EOT. */
  encode(text: string): number[] {
    const ids: number[] = [];
    const cleaned = clipCleanLower(text);
    for (const match of cleaned.matchAll(WORD_PATTERN)) {
      const word = match[0];
      const special = this.specials.get(word);
      if (special !== undefined) ids.push(special);
      else for (const id of this.wordIds(word)) ids.push(id);
    }
    return ids;
  }

  /**
   * Token ids for the text encoder: each row is SOT, the BPE ids, EOT, zero padded to
   * `context`. A text that does not fit keeps its first context−1 tokens and EOT is
   * written over the last one (CLIP's `truncate=True`).
   */
  encodeBatch(texts: readonly string[], context: number = DEFAULT_CONTEXT): EncodedBatch {
    if (!Number.isInteger(context) || context < 2) throw new RangeError(`context must be an integer ≥ 2, got ${context}`);
    const ids = new BigInt64Array(texts.length * context);
    const tokenCounts = new Int32Array(texts.length);
    const truncated: boolean[] = new Array(texts.length);
    const sot = BigInt(this.sot);
    const eot = BigInt(this.eot);
    texts.forEach((text, row) => {
      const bpe = this.encode(text);
      const base = row * context;
      const kept = Math.min(bpe.length, context - 2);
      ids[base] = sot;
      for (let i = 0; i < kept; i++) ids[base + 1 + i] = BigInt(bpe[i]!);
      ids[base + kept + 1] = eot;
      tokenCounts[row] = bpe.length + 2;
      truncated[row] = bpe.length + 2 > context;
    });
    return { ids, context, tokenCounts, truncated };
  }

  /** Ids of one pre-tokenised word, through the BPE cache. */
  private wordIds(word: string): readonly number[] {
    const cached = this.cache.get(word);
    if (cached) return cached;
    const bytes = utf8.encode(word);
    const symbols: string[] = new Array(bytes.length);
    for (let i = 0; i < bytes.length; i++) symbols[i] = BYTE_TO_CHAR[bytes[i]!]!;
    const pieces = this.bpe(symbols);
    const ids = pieces.map((piece) => {
      const id = this.vocab.get(piece);
      if (id === undefined) throw new Error(`tokenizer: "${piece}" is not in the vocabulary`);
      return id;
    });
    if (this.cache.size >= this.cacheLimit) this.cache.clear(); // bounded: rare words must not grow it forever
    this.cache.set(word, ids);
    return ids;
  }

  /** Applies the merges by rank, lowest first, each to all its non-overlapping occurrences. */
  private bpe(symbols: string[]): string[] {
    if (symbols.length === 0) return [];
    let word = symbols.slice();
    word[word.length - 1] += END_OF_WORD;
    while (word.length > 1) {
      let best = Infinity;
      let bestPair = '';
      for (let i = 0; i < word.length - 1; i++) {
        const pair = `${word[i]} ${word[i + 1]}`;
        const rank = this.ranks.get(pair);
        if (rank !== undefined && rank < best) {
          best = rank;
          bestPair = pair;
        }
      }
      if (best === Infinity) break;
      const split = bestPair.indexOf(' ');
      const first = bestPair.slice(0, split);
      const second = bestPair.slice(split + 1);
      const merged: string[] = [];
      for (let i = 0; i < word.length; ) {
        if (i < word.length - 1 && word[i] === first && word[i + 1] === second) {
          merged.push(first + second);
          i += 2;
        } else {
          merged.push(word[i]!);
          i += 1;
        }
      }
      word = merged;
    }
    return word;
  }
}

/**
 * Builds the `tokenizer.json` equivalent of CLIP's merges file (the text of
 * `bpe_simple_vocab_16e6.txt`): useful where no model pack is at hand.
 */
export function clipTokenizerJsonFromMerges(mergesText: string, vocabSize = 49408): TokenizerJson {
  const mergeCount = vocabSize - 256 * 2 - 2;
  const lines = mergesText.split('\n').slice(1, mergeCount + 1);
  if (lines.length !== mergeCount) throw new Error(`expected ${mergeCount} merges, found ${lines.length}`);
  const merges = lines.map((l): [string, string] => {
    const [a, b, ...rest] = l.split(' ');
    if (!a || !b || rest.length > 0) throw new Error(`bad merge line: ${JSON.stringify(l)}`);
    return [a, b];
  });
  const tokens = byteLevelAlphabet().map((e) => e.char);
  const list = [...tokens, ...tokens.map((t) => t + END_OF_WORD), ...merges.map(([a, b]) => a + b), CLIP_SOT, CLIP_EOT];
  const vocab: Record<string, number> = {};
  list.forEach((t, i) => (vocab[t] = i));
  return {
    model: { type: 'BPE', vocab, merges: merges.map(([a, b]) => `${a} ${b}`), end_of_word_suffix: END_OF_WORD, unk_token: CLIP_EOT },
    added_tokens: [
      { id: vocab[CLIP_SOT]!, content: CLIP_SOT, special: true },
      { id: vocab[CLIP_EOT]!, content: CLIP_EOT, special: true },
    ],
  };
}
