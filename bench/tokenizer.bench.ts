/**
 * Tokenizer throughput on the 200 × 51 OpenImages-rare LLM descriptions (10,200 texts).
 *   npx tsx bench/tokenizer.bench.ts
 * Prints load time, a cold pass (empty BPE cache) and the best of 5 warm passes.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ClipTokenizer } from '../src/inference/text/tokenizer.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const shared = process.env.OMNITAG_SHARED_DIR ?? path.resolve(repoRoot, '..', 'shared');
const tokenizerJson = process.argv[2]; // optional: a pack's tokenizer.json
const descriptionsFile = path.join(shared, 'data', 'ram', 'openimages_rare_200_llm_tag_descriptions.json');
if (!existsSync(descriptionsFile)) {
  console.error(`needs ${descriptionsFile}`);
  process.exit(1);
}

let t = performance.now();
const tok = tokenizerJson
  ? await ClipTokenizer.fromFile(tokenizerJson)
  : ClipTokenizer.fromClipMergesFile(path.join(shared, 'data', 'clip', 'bpe_simple_vocab_16e6.txt.gz'));
const loadMs = performance.now() - t;

const entries = JSON.parse(readFileSync(descriptionsFile, 'utf8')) as Record<string, string[]>[];
const texts = entries.flatMap((e) => Object.values(e).flat());

t = performance.now();
const cold = tok.encodeBatch(texts);
const coldMs = performance.now() - t;
let warmMs = Infinity;
for (let i = 0; i < 5; i++) {
  t = performance.now();
  tok.encodeBatch(texts);
  warmMs = Math.min(warmMs, performance.now() - t);
}
const truncated = cold.truncated.filter(Boolean).length;
console.log(
  JSON.stringify({
    texts: texts.length,
    loadMs: Math.round(loadMs),
    coldMs: Math.round(coldMs),
    warmMs: Math.round(warmMs),
    textsPerSecondWarm: Math.round(texts.length / (warmMs / 1000)),
    truncated,
    node: process.version,
  }),
);
