import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readNpy } from '../../src/inference/pack/npy.ts';
import { clipCleanLower, fixText, pyHtmlUnescape } from '../../src/inference/text/clean.ts';
import { byteLevelAlphabet, ClipTokenizer, clipTokenizerJsonFromMerges, type TokenizerJson } from '../../src/inference/text/tokenizer.ts';
import { hasShared, repoRoot, sharedDir } from './helpers.ts';

const upstream = path.join(sharedDir, 'reference', 'upstream-tiny');
const bpeFile = path.join(sharedDir, 'data', 'clip', 'bpe_simple_vocab_16e6.txt.gz');
const haveReference = hasShared && existsSync(path.join(upstream, 'clip_tokenizer_cases.json')) && existsSync(bpeFile);
if (!haveReference) console.warn(`tokenizer tests: ${sharedDir} is absent; the CLIP reference comparisons are skipped`);

describe('CLIP text clean-up', () => {
  // Expected values: ftfy 6.3.1 fix_text → html.unescape ×2 → strip → whitespace collapse → lower.
  const cases: [string, string][] = [
    ['Tom &amp; Jerry', 'tom & jerry'],
    ['AT&T and &amp without semicolon', 'at&t and & without semicolon'],
    ['&EACUTE;t&eacute;', 'été'],
    ['&lt;b&gt; then <i>', '<b> then <i>'],
    ['line one &amp;\n<b> line two &amp;', 'line one & <b> line two &'],
    ['&#x80;&#150;&#0;&#xD800;&#1114112;&#x0b;', '€–\ufffd\ufffd\ufffd'],
    ['cafÃ©', 'café'],
    ['doesnâ€™t', "doesn't"],
    ['The Mona Lisa doesnÃ¢â‚¬â„¢t', "the mona lisa doesn't"],
    ['«Straße»', '«straße»'],
    ['naïve café — résumé', 'naïve café — résumé'],
    ['voilÃ  le travail', 'voilà le travail'],
    ['Ð¿Ñ€Ð¸Ð²ÐµÑ‚', 'привет'],
    ['\u0085next', '…next'],
    ['ﬁne ﬂow', 'fine flow'],
    ['ＬＯＵＤ\u3000ＮＯＩＳＥＳ', 'loud noises'],
    ['“curly” ‘quotes’', '"curly" \'quotes\''],
    ['a\r\nb\rc\u2028d', 'a b c d'],
    ['bell\u0007 \u001b[31mred\u001b[0m', 'bell red'],
    ['BOM\ufeffhere', 'bomhere'],
    ['e\u0301 NFD', '\u00e9 nfd'],
    ['  many \t spaces\u00a0and\u3000more  ', 'many spaces and more'],
    ['İstanbul ΣΑΣ', 'i̇stanbul σας'],
    ['&ampx &notit; &copy2024', '&x ¬it; ©2024'],
  ];
  it.each(cases)('%j → %j', (input, expected) => {
    expect(clipCleanLower(input)).toBe(expected);
  });

  it('keeps entities once a line has shown a literal "<" (the text is HTML)', () => {
    expect(fixText('a &amp; b\n<p> c &amp; d\ne &amp; f')).toBe('a & b\n<p> c &amp; d\ne &amp; f');
  });

  it("implements Python's html.unescape, including legacy names without ';'", () => {
    expect(pyHtmlUnescape('&amp;&AMP&ltx&notin;&notit;&#65;&#x42;&#99999999999;&unknown;')).toBe('&&<x∉¬it;AB\ufffd&unknown;');
  });

  it('leaves plain ASCII untouched apart from white space and case', () => {
    expect(clipCleanLower('A photo of a Cat.')).toBe('a photo of a cat.');
  });
});

/** A toy vocabulary: byte characters (ids 0–255), the same with </w> (256–511), `extra` from 512. */
function toyTokenizer(merges: Array<string | [string, string]>, extra: string[] = []): ClipTokenizer {
  const list = [...ALPHABET, ...ALPHABET.map((c) => c + '</w>'), ...extra, '<|startoftext|>', '<|endoftext|>'];
  const vocab = Object.fromEntries(list.map((t, i) => [t, i]));
  return ClipTokenizer.fromJson({ model: { type: 'BPE', vocab, merges, end_of_word_suffix: '</w>' } });
}
const ALPHABET = byteLevelAlphabet().map((e) => e.char);
const ch = (c: string) => ALPHABET.indexOf(c);
const end = (c: string) => 256 + ALPHABET.indexOf(c);

describe('ClipTokenizer (toy vocabulary)', () => {
  it('marks the last symbol of a word with </w> and applies merges by rank', () => {
    const tok = toyTokenizer(['c a', 'ca t</w>'], ['ca', 'cat</w>']);
    expect(tok.encode('cat')).toEqual([513]);
    expect(tok.encode('ca')).toEqual([ch('c'), end('a')]); // 'ca</w>' is no merge
  });

  it('merges each pair left to right without overlap, then looks for the next pair', () => {
    expect(toyTokenizer(['a a'], ['aa']).encode('aaaa')).toEqual([512, ch('a'), end('a')]);
    expect(toyTokenizer(['a a', 'aa aa'], ['aa', 'aaaa']).encode('aaaaa')).toEqual([513, end('a')]);
  });

  it('accepts merges as "a b" strings or [a, b] pairs alike', () => {
    const strings = toyTokenizer(['a a', 'aa a</w>'], ['aa', 'aaa</w>']);
    const pairs = toyTokenizer([['a', 'a'], ['aa', 'a</w>']], ['aa', 'aaa</w>']);
    expect(strings.encode('aaa aaaa')).toEqual([513, 512, ch('a'), end('a')]);
    expect(pairs.encode('aaa aaaa')).toEqual([513, 512, ch('a'), end('a')]);
  });

  it('encodes UTF-8 bytes through the byte alphabet', () => {
    // 'é' = C3 A9 → 'Ã' and '©</w>'
    expect(toyTokenizer([]).encode('é')).toEqual([ch('Ã'), end('©')]);
  });

  it("splits contractions, single digits and symbol runs as CLIP's pattern does", () => {
    const tok = toyTokenizer([]);
    const words = (text: string) => {
      const ids = tok.encode(text);
      return ids.map((id) => (id >= 256 ? ALPHABET[id - 256] + '|' : ALPHABET[id])).join('');
    };
    expect(words("it's 42!?")).toBe("it|'s|4|2|!?|");
  });

  it('maps literal special markers to their ids', () => {
    const tok = toyTokenizer([]);
    expect(tok.encode('<|endoftext|>')).toEqual([tok.eot]);
    expect(tok.encode('<|STARTOFTEXT|>')).toEqual([tok.sot]);
  });

  it('pads with zeros, keeps EOT last when truncating and reports counts', () => {
    const tok = toyTokenizer([]);
    const { ids, tokenCounts, truncated, context } = tok.encodeBatch(['x y', 'x y z', 'x y z w', ''], 5);
    const S = BigInt(tok.sot);
    const E = BigInt(tok.eot);
    const [x, y, z] = [end('x'), end('y'), end('z')].map(BigInt);
    expect(context).toBe(5);
    expect(Array.from(ids)).toEqual([S, x, y, E, 0n, S, x, y, z, E, S, x, y, z, E, S, E, 0n, 0n, 0n]);
    expect(Array.from(tokenCounts)).toEqual([4, 5, 6, 2]);
    expect(truncated).toEqual([false, false, true, false]);
  });

  it('rejects a tokenizer.json that is not a CLIP BPE', () => {
    const vocab = { a: 0, '<|startoftext|>': 1, '<|endoftext|>': 2 };
    expect(() => ClipTokenizer.fromJson({ model: { type: 'WordPiece', vocab, merges: [] } })).toThrow(/not BPE/);
    expect(() => ClipTokenizer.fromJson({ model: { vocab, merges: [], end_of_word_suffix: '##' } })).toThrow(/end_of_word_suffix/);
    expect(() => ClipTokenizer.fromJson({ model: { vocab: { a: 0 }, merges: [] } })).toThrow(/startoftext/);
    expect(() => ClipTokenizer.fromJson({ model: { vocab, merges: ['a b c'] } })).toThrow(/not a pair/);
    expect(() => ClipTokenizer.fromJson({} as TokenizerJson)).toThrow(/model.vocab/);
    expect(() => toyTokenizer([]).encodeBatch(['a'], 1)).toThrow(RangeError);
  });
});

interface ReferenceCase {
  id: number;
  category: string;
  text: string;
  cleaned_lower: string;
  bpe_ids: number[];
  context_ids_truncate_true: number[];
  truncated: boolean;
}

describe.skipIf(!haveReference)('ClipTokenizer against the CLIP reference', () => {
  const tok = haveReference ? ClipTokenizer.fromClipMergesFile(bpeFile) : (null as never);
  const cases: ReferenceCase[] = haveReference
    ? JSON.parse(readFileSync(path.join(upstream, 'clip_tokenizer_cases.json'), 'utf8')).cases
    : [];

  it('builds the 49,408-token vocabulary from the merges file', () => {
    expect(tok.vocabSize).toBe(49408);
    expect([tok.sot, tok.eot]).toEqual([49406, 49407]);
    const json = clipTokenizerJsonFromMerges('#version\na b\n', 515);
    expect([json.model.vocab['ab'], json.model.vocab['<|startoftext|>'], json.model.vocab['<|endoftext|>']]).toEqual([512, 513, 514]);
  });

  it('cleans all 300 reference strings exactly as CLIP (ftfy + html + whitespace + lower)', () => {
    const wrong = cases.filter((c) => clipCleanLower(c.text) !== c.cleaned_lower).map((c) => c.id);
    expect(wrong).toEqual([]);
  });

  it('gives identical ids for all 300 reference strings (BPE and 77-token rows)', () => {
    expect(cases).toHaveLength(300);
    const batch = tok.encodeBatch(cases.map((c) => c.text));
    const wrong: number[] = [];
    cases.forEach((c, i) => {
      const row = Array.from(batch.ids.subarray(i * 77, (i + 1) * 77), Number);
      const same =
        JSON.stringify(tok.encode(c.text)) === JSON.stringify(c.bpe_ids) &&
        JSON.stringify(row) === JSON.stringify(c.context_ids_truncate_true) &&
        batch.truncated[i] === c.truncated &&
        batch.tokenCounts[i] === c.bpe_ids.length + 2;
      if (!same) wrong.push(c.id);
    });
    expect(wrong).toEqual([]);
  });

  it('reproduces text_tokens.npy for the 84 open-set descriptions', () => {
    const config = JSON.parse(readFileSync(path.join(upstream, 'config.json'), 'utf8'));
    const descriptions = (config.open_set.descriptions as string[][]).flat();
    const expected = readNpy(path.join(upstream, 'text_tokens.npy'));
    expect(expected.shape).toEqual([84, 77]);
    const { ids } = tok.encodeBatch(descriptions);
    expect(Array.from(ids, Number)).toEqual(Array.from(expected.data as Int32Array));
  });

  it('tokenizes the 200 × 51 LLM descriptions with correct truncation', () => {
    const file = path.join(sharedDir, 'data', 'ram', 'openimages_rare_200_llm_tag_descriptions.json');
    const entries = JSON.parse(readFileSync(file, 'utf8')) as Record<string, string[]>[];
    const texts = entries.flatMap((e) => Object.values(e).flat());
    expect(texts).toHaveLength(200 * 51);
    const { ids, tokenCounts, truncated } = tok.encodeBatch(texts);
    const problems: number[] = [];
    texts.forEach((_, i) => {
      const row = ids.subarray(i * 77, (i + 1) * 77);
      const n = tokenCounts[i]!;
      const eotAt = row.indexOf(49407n);
      const ok =
        row[0] === 49406n &&
        truncated[i] === n > 77 &&
        eotAt === Math.min(n, 77) - 1 &&
        row.subarray(eotAt + 1).every((v) => v === 0n) &&
        row.subarray(1, eotAt).every((v) => v > 0n && v < 49406n);
      if (!ok) problems.push(i);
    });
    expect(problems).toEqual([]);
    expect(truncated.some(Boolean)).toBe(true);
  });

  const packTokenizer = path.join(repoRoot, 'packs', 'tiny', 'tokenizer.json');
  it.skipIf(!existsSync(packTokenizer))("agrees with packs/tiny/tokenizer.json (the export tool's file)", () => {
    const fromPack = ClipTokenizer.fromJson(JSON.parse(readFileSync(packTokenizer, 'utf8')));
    const texts = cases.map((c) => c.text);
    expect(Array.from(fromPack.encodeBatch(texts).ids)).toEqual(Array.from(tok.encodeBatch(texts).ids));
  });
});
