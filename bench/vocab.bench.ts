/**
 * Vocabulary performance (issue 5): seeding from the built-in tags, incremental recompiles,
 * embedding throughput through the cache, and the label-bank cache's memory with 1,000
 * vocabularies.
 *
 *   npx tsx bench/vocab.bench.ts                       # embedded database (PGlite)
 *   DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test npx tsx bench/vocab.bench.ts
 *   OMNITAG_MODEL_PACK=packs/full BENCH_TEXTS=512 BENCH_VOCABULARIES=0 npx tsx bench/vocab.bench.ts
 *
 * BENCH_TEXTS: texts in the throughput section (8192); BENCH_VOCABULARIES: vocabularies in the
 * memory section (1000; 0 skips it); BENCH_BANK_BUDGET: its label-bank budget in bytes (256 MiB).
 * Run with `node --expose-gc --import tsx` for the memory figure after a collection.
 * With DATABASE_URL the bench creates a scratch database on that server and drops it after.
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import pg from 'pg';
import { pino } from 'pino';
import { loadConfig } from '../src/config.ts';
import { openDatabase } from '../src/db/client.ts';
import { startEmbeddedPostgres } from '../src/db/embedded.ts';
import { applyMigrations } from '../src/db/migrate.ts';
import { createLocalInferenceEngine } from '../src/inference/index.ts';
import { createVocabularyServices } from '../src/vocab/index.ts';

const log = pino({ level: 'silent' });
const packDir = path.resolve(process.env.OMNITAG_MODEL_PACK ?? 'packs/tiny');
const serverUrl = process.env.DATABASE_URL;
const VOCABULARIES = Number(process.env.BENCH_VOCABULARIES ?? 1000);
const BANK_BUDGET = Number(process.env.BENCH_BANK_BUDGET ?? 256 * 1024 * 1024);

const ms = (t: number) => `${t.toFixed(1)} ms`;
const now = () => performance.now();
/** The defaults with the LLM off, the worker off and the given cache sizes. */
const defaults = loadConfig({});
const vocabConfig = (cache: { embeddingBytes: number; labelBankBytes: number }) => ({
  llm: { ...defaults.llm, baseUrl: undefined, model: 'none' },
  cache: { embeddingBytes: cache.embeddingBytes },
  labelBanks: { ...defaults.labelBanks, cacheBytes: cache.labelBankBytes },
  vocab: defaults.vocab,
  limits: defaults.limits,
  descriptionWorker: false,
});

async function scratchDatabase(): Promise<{ url: string; drop: () => Promise<void>; pool: number }> {
  if (!serverUrl) {
    const embedded = await startEmbeddedPostgres(undefined);
    await applyMigrations(embedded.url);
    await embedded.whenIdle();
    return { url: embedded.url, drop: () => embedded.stop(), pool: 1 };
  }
  const name = `omnitag_bench_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  await applyMigrations(url.toString());
  return {
    url: url.toString(),
    pool: 8,
    async drop() {
      const c = new pg.Client({ connectionString: serverUrl });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

const scratch = await scratchDatabase();
const db = openDatabase(scratch.url, scratch.pool, log);
const engine = await createLocalInferenceEngine({ packDir, maxQueue: 4096 });
await engine.start();
const services = createVocabularyServices({
  prisma: db.prisma,
  pool: db.pool,
  engine,
  log,
  config: vocabConfig({ embeddingBytes: 256 * 1024 * 1024, labelBankBytes: 2 * 1024 * 1024 * 1024 }),
});
const tenant = await db.prisma.tenant.create({ data: { name: 'bench', slug: `bench-${Date.now()}` } });
const T = tenant.id;
const results: Record<string, string> = {};
console.log(`pack ${engine.info.packName} (E=${engine.info.embedDim}), database ${serverUrl ? 'postgresql' : 'embedded'}, ${new Date().toISOString()}`);

// 1. seeding from the built-in vocabulary
await engine.builtinVocabulary();
let t = now();
const seeded = await services.vocabularies.create(T, { name: 'builtin', fromBuiltin: true });
results['seed 4,585 built-in tags'] = ms(now() - t);
t = now();
await services.labelBanks.forVocabulary(T, seeded.id);
results['first compile of the seeded vocabulary'] = ms(now() - t);

// 2. one new tag with 51 descriptions, cold and cached embeddings
const runs = 5;
const cold: number[] = [];
const coldEmbed: number[] = [];
const warm: number[] = [];
for (let r = 0; r < runs; r++) {
  const texts = Array.from({ length: 51 }, (_, i) => `bench gadget ${r}-${randomBytes(3).toString('hex')} seen from side ${i}.`);
  const added = await services.tags.add(T, seeded.id, [{ name: `bench gadget ${r}`, descriptions: texts }]);
  t = now();
  await services.labelBanks.forVocabulary(T, seeded.id);
  cold.push(now() - t);
  const lc = services.labelBanks.stats().lastCompile!;
  coldEmbed.push(lc.embedMs);
  if (r === 0) results[`first tag added after seeding (own segments built: ${lc.segmentsBuilt})`] = `${ms(cold[0]!)} (embeddings ${ms(lc.embedMs)}, read ${ms(lc.readMs)}, segments ${ms(lc.buildMs)})`;
  // remove it and add it again: the same 51 texts, now in the embedding cache
  await services.tags.remove(T, [added.results[0]!.tag!.id]);
  await services.labelBanks.forVocabulary(T, seeded.id);
  await services.tags.add(T, seeded.id, [{ name: `bench gadget ${r}`, descriptions: texts }]);
  t = now();
  await services.labelBanks.forVocabulary(T, seeded.id);
  warm.push(now() - t);
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const later = cold.slice(1);
const laterEmbed = coldEmbed.slice(1);
results['+1 tag × 51 descriptions, cold: compile total (median of runs 2–5)'] = ms(median(later));
results['  of which embedding the 51 texts'] = ms(median(laterEmbed));
results['  compile without the embeddings'] = ms(median(later.map((c, i) => c - laterEmbed[i]!)));
results['+1 tag × 51 descriptions, cached embeddings (median of 5)'] = ms(median(warm));
const last = services.labelBanks.stats().lastCompile!;
results['  breakdown of the last cached one'] = `read ${ms(last.readMs)}, embeddings ${ms(last.embedMs)}, segments ${ms(last.buildMs)} (${last.segmentsBuilt} of ${last.segments} built)`;

// 3. embedding throughput: raw encoder vs the cache path (new texts: hash, look up, encode,
//    store), alternated over 3 rounds of new texts so that load changes hit both alike
const N = Number(process.env.BENCH_TEXTS ?? 8192);
const batch = (tag: string) => Array.from({ length: N }, (_, i) => `a ${tag} photo of object ${i} on a table.`);
await engine.embedTexts(batch('warmup').slice(0, 256));
const rawRates: number[] = [];
const cacheRates: number[] = [];
for (let round = 0; round < 3; round++) {
  t = now();
  await engine.embedTexts(batch(`raw${round}`));
  rawRates.push(N / ((now() - t) / 1000));
  t = now();
  await services.embeddings.embed(batch(`cached${round}`));
  cacheRates.push(N / ((now() - t) / 1000));
}
await services.embeddings.flush();
services.embeddings.clearMemory();
t = now();
const again = await services.embeddings.embed(batch('cached0'));
const fromDb = N / ((now() - t) / 1000);
const raw = median(rawRates);
const viaCache = median(cacheRates);
results['text encoder, raw (median of 3)'] = `${raw.toFixed(0)} texts/s`;
results['through the cache, all new (median of 3)'] = `${viaCache.toFixed(0)} texts/s (${((viaCache / raw) * 100).toFixed(0)}% of raw; rounds ${rawRates.map((r, i) => `${((cacheRates[i]! / r) * 100).toFixed(0)}%`).join(', ')})`;
results['through the cache, all in the database'] = `${fromDb.toFixed(0)} texts/s (${again.databaseHits} database hits)`;

// 4. label-bank memory with many vocabularies
if (VOCABULARIES > 0) {
const banks = createVocabularyServices({
  prisma: db.prisma,
  pool: db.pool,
  engine,
  log,
  config: vocabConfig({ embeddingBytes: 64 * 1024 * 1024, labelBankBytes: BANK_BUDGET }),
});
const names = Array.from({ length: 30 }, (_, i) => ({ name: `common object ${i}` }));
const ids: string[] = [];
t = now();
for (let k = 0; k < VOCABULARIES; k++) {
  const v = await banks.vocabularies.create(T, { name: `many ${k}` });
  await banks.tags.add(T, v.id, k % 10 === 0 ? [...names, { name: `special ${k}` }] : names);
  ids.push(v.id);
}
const createMs = now() - t;
global.gc?.();
const before = process.memoryUsage();
let peakBytes = 0;
t = now();
const parts = { read: 0, embed: 0, pack: 0 };
for (const id of ids) {
  await banks.labelBanks.forVocabulary(T, id);
  const st = banks.labelBanks.stats();
  peakBytes = Math.max(peakBytes, st.bytes);
  parts.read += st.lastCompile!.readMs;
  parts.embed += st.lastCompile!.embedMs;
  parts.pack += st.lastCompile!.buildMs;
}
const compileAll = now() - t;
global.gc?.();
const after = process.memoryUsage();
const st = banks.labelBanks.stats();
results[`${VOCABULARIES} vocabularies × 30–31 tags × 51 descriptions`] = `created in ${(createMs / 1000).toFixed(1)} s, compiled in ${(compileAll / 1000).toFixed(1)} s (per compile: read ${ms(parts.read / ids.length)}, embeddings ${ms(parts.embed / ids.length)}, pack ${ms(parts.pack / ids.length)})`;
results['label-bank cache'] = `budget ${(BANK_BUDGET / 2 ** 20).toFixed(0)} MiB, peak accounted ${(peakBytes / 2 ** 20).toFixed(1)} MiB, ${st.entries} entries kept, over the compiles: RSS +${((after.rss - before.rss) / 2 ** 20).toFixed(1)} MiB, JS heap +${((after.heapUsed - before.heapUsed) / 2 ** 20).toFixed(1)} MiB`;
}

for (const [k, v] of Object.entries(results)) console.log(`${k.padEnd(62)} ${v}`);

await engine.dispose();
await db.close();
await scratch.drop();
