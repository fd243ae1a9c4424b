/**
 * Many tenants on segmented label banks (the issue's acceptance benchmark): N tenants, each
 * with a vocabulary seeded from the pack's built-in tags plus BENCH_OWN_TAGS own tags (51
 * hand-written descriptions each, the same texts in every tenant so the text encoder is not what
 * is measured), 100 built-in tags disabled and 20 thresholds overridden; then, from one process
 * with one label-bank budget:
 *   1. seeding: tenant 0 through the services, tenants 1…N−1 cloned from it with SQL;
 *   2. memory: every vocabulary compiled in round-robin order, two passes (RSS beyond the
 *      baseline, the LRU's entries and bytes, cold compile times);
 *   3. latency: hot (tenant 0 always) vs round-robin (the next tenant each time) in random-order
 *      pairs, through TaggingService.tagImage and on the decoder alone (image encoded once);
 *   4. adding one tag to a seeded vocabulary and scoring the next image, over a warm request.
 *
 *   DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres OMNITAG_MODEL_PACK=packs/full \
 *     node --expose-gc --import tsx bench/tenants.bench.ts
 *   DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres BENCH_TENANTS=30 BENCH_PAIRS=5 \
 *     node --expose-gc --import tsx bench/tenants.bench.ts          # tiny pack, quick check
 *
 * PostgreSQL only (DATABASE_URL: a server where the bench may create a database). Knobs:
 *   BENCH_TENANTS      tenants (1000)
 *   BENCH_OWN_TAGS     own tags per vocabulary, 51 descriptions each (50)
 *   BENCH_PAIRS        hot/round-robin pairs per latency measurement (30)
 *   BENCH_BANK_BUDGET  label-bank LRU budget in bytes (1 GiB)
 *   BENCH_KEEP_DB      name of a database to seed into and keep: a rerun reuses the tenants it
 *                      already holds (and clones only the missing ones); default a scratch
 *                      database, dropped at the end
 *   BENCH_ADD_TENANTS  tenants in the add-one-tag section (5)
 *   BENCH_ADD_FULL     0 skips the full-request (tagImage) variant of the add-one-tag section
 *   BENCH_IMAGE        JPEG to tag (default ../shared/data/images/demo4.jpg, else a generated 640×480)
 *   OMNITAG_MODEL_PACK (packs/tiny), OMNITAG_LABEL_BANK_PRECISION, OMNITAG_LABEL_BANK_SEGMENT_TAGS
 * Run with `node --expose-gc` so memory is read after a collection; add `--max-old-space-size=512`
 * to see the peak between collections with V8's heap sized to the process (docs/benchmarks.md). glibc keeps freed multi-MB
 * buffers (own segments are ~5 MB SharedArrayBuffers at full size) in RSS once its dynamic mmap
 * threshold has risen: compare RSS with MALLOC_MMAP_THRESHOLD_=1048576 (printed with the command).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { pino } from 'pino';
import sharp from 'sharp';
import { loadConfig } from '../src/config.ts';
import { openDatabase } from '../src/db/client.ts';
import { applyMigrations } from '../src/db/migrate.ts';
import { createLocalInferenceEngine, type ImageEmbeddings } from '../src/inference/index.ts';
import { TaggingService } from '../src/tagging/tagging-service.ts';
import { UsageRecorder } from '../src/tagging/usage-recorder.ts';
import { createVocabularyServices, type VocabularyConfig } from '../src/vocab/index.ts';

// ---------------------------------------------------------------- settings

const serverUrl = process.env.DATABASE_URL;
if (!serverUrl || !/^postgres(ql)?:/.test(serverUrl)) {
  console.error('tenants.bench needs PostgreSQL: set DATABASE_URL=postgresql://… (a server where it may create a database)');
  process.exit(2);
}
const intEnv = (name: string, fallback: number, min: number): number => {
  const raw = process.env[name];
  const n = raw === undefined || raw === '' ? fallback : Number(raw);
  if (!Number.isInteger(n) || n < min) {
    console.error(`${name} must be a whole number ≥ ${min} (got ${raw})`);
    process.exit(2);
  }
  return n;
};
const packDir = path.resolve(process.env.OMNITAG_MODEL_PACK ?? 'packs/tiny');
const TENANTS = intEnv('BENCH_TENANTS', 1000, 2);
const OWN_TAGS = intEnv('BENCH_OWN_TAGS', 50, 1);
const PAIRS = intEnv('BENCH_PAIRS', 30, 2);
const BANK_BUDGET = intEnv('BENCH_BANK_BUDGET', 1024 ** 3, 1);
const ADD_TENANTS = Math.min(intEnv('BENCH_ADD_TENANTS', 5, 1), TENANTS - 1);
const ADD_FULL = process.env.BENCH_ADD_FULL !== '0';
const KEEP_DB = process.env.BENCH_KEEP_DB || undefined;
if (KEEP_DB !== undefined && !/^[a-z_][a-z0-9_]{0,62}$/.test(KEEP_DB)) {
  console.error('BENCH_KEEP_DB must be a plain lower-case database name ([a-z_][a-z0-9_]*)');
  process.exit(2);
}
const DESCRIPTIONS = 51;
const DISABLED = 100;
const OVERRIDDEN = 20;
const CLONE_BATCH = 25;
const SLUG_PREFIX = 'bench-tenant-';
const slugOf = (i: number) => `${SLUG_PREFIX}${String(i).padStart(6, '0')}`;
const ownName = (i: number) => `bench item ${i}`;
const ownTexts = (i: number) => Array.from({ length: DESCRIPTIONS }, (_, d) => `a photo of a ${ownName(i)}, view ${d}.`);

const log = pino({ level: 'silent' });
/** Configuration defaults, with the label-bank settings of the environment. */
const defaults = loadConfig(
  Object.fromEntries(['OMNITAG_LABEL_BANK_PRECISION', 'OMNITAG_LABEL_BANK_SEGMENT_TAGS'].filter((k) => process.env[k]).map((k) => [k, process.env[k]])),
);
const vocabConfig = {
  llm: { ...defaults.llm, baseUrl: undefined, model: 'none' },
  cache: { embeddingBytes: 256 * 1024 * 1024 },
  labelBanks: { cacheBytes: BANK_BUDGET, precision: defaults.labelBanks.precision, segmentTags: defaults.labelBanks.segmentTags },
  vocab: defaults.vocab,
  limits: defaults.limits,
  descriptionWorker: false,
} satisfies VocabularyConfig;

// ---------------------------------------------------------------- small helpers

const now = () => performance.now();
const MiB = (b: number) => (b / 2 ** 20).toFixed(1);
const f1 = (x: number | undefined) => (x === undefined || Number.isNaN(x) ? '–' : x.toFixed(1));
const sorted = (xs: readonly number[]) => [...xs].sort((a, b) => a - b);
const quantile = (xs: readonly number[], q: number) => {
  if (xs.length === 0) return NaN;
  const s = sorted(xs);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
};
const median = (xs: readonly number[]) => {
  if (xs.length === 0) return NaN;
  const s = sorted(xs);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
/** Two-sided 95% Student t quantiles, df 1…30 (1.96 beyond). */
const T95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145, 2.131, 2.12, 2.11, 2.101, 2.093, 2.086, 2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048, 2.045, 2.042];
function meanCi(xs: readonly number[]): { mean: number; half: number } {
  const m = mean(xs);
  if (xs.length < 2) return { mean: m, half: NaN };
  const sd = Math.sqrt(xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - 1));
  return { mean: m, half: (T95[xs.length - 2] ?? 1.96) * (sd / Math.sqrt(xs.length)) };
}
/** Deterministic coin flips for the pair order (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const gc = (globalThis as { gc?: () => void }).gc;
/** Memory after collections; freed shared memory is unmapped by a background sweeper, so it waits a little after each. */
async function collect(): Promise<NodeJS.MemoryUsage> {
  if (gc) {
    for (let i = 0; i < 3; i++) {
      gc();
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  return process.memoryUsage();
}
function table(headers: readonly string[], rows: readonly (readonly (string | number)[])[]): string {
  return [`| ${headers.join(' | ')} |`, `|${headers.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}
const out: string[] = [];
const print = (s = '') => {
  out.push(s);
  console.log(s);
};

// ---------------------------------------------------------------- database

interface BenchDatabase {
  url: string;
  name: string;
  kept: boolean;
  drop(): Promise<void>;
}

async function adminQuery<T extends pg.QueryResultRow>(sql: string, values: unknown[] = []): Promise<pg.QueryResult<T>> {
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  try {
    return await admin.query<T>(sql, values);
  } finally {
    await admin.end();
  }
}

async function benchDatabase(): Promise<BenchDatabase> {
  const name = KEEP_DB ?? `omnitag_bench_tenants_${Math.random().toString(16).slice(2, 10)}`;
  const exists = (await adminQuery('SELECT 1 FROM pg_database WHERE datname = $1', [name])).rowCount! > 0;
  if (!exists) await adminQuery(`CREATE DATABASE ${name}`);
  const url = new URL(serverUrl!);
  url.pathname = `/${name}`;
  await applyMigrations(url.toString());
  return {
    url: url.toString(),
    name,
    kept: KEEP_DB !== undefined,
    drop: async () => {
      if (KEEP_DB === undefined) await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    },
  };
}

interface BenchTenant {
  index: number;
  tenantId: string;
  vocabularyId: string;
}

async function listTenants(pool: pg.Pool): Promise<BenchTenant[]> {
  const { rows } = await pool.query<{ slug: string; tenant_id: string; vocabulary_id: string }>(
    `SELECT t.slug, t.id AS tenant_id, v.id AS vocabulary_id FROM tenants t JOIN vocabularies v ON v.tenant_id = t.id
      WHERE t.slug LIKE $1 ORDER BY t.slug`,
    [`${SLUG_PREFIX}%`],
  );
  return rows.map((r) => ({ index: Number(r.slug.slice(SLUG_PREFIX.length)), tenantId: r.tenant_id, vocabularyId: r.vocabulary_id }));
}

interface Shape {
  tags: number;
  builtin: number;
  enabled: number;
  thresholds: number;
  descriptions: number;
  names: number;
  aliases: number;
  vocabularies: number;
}

/** Distinct vocabulary shapes over the bench tenants (one row, count N, when the clone is right). */
async function shapes(pool: pg.Pool, onlyVocabulary?: string): Promise<Shape[]> {
  const { rows } = await pool.query<Shape>(
    `WITH v AS (SELECT v.id FROM vocabularies v JOIN tenants t ON t.id = v.tenant_id WHERE t.slug LIKE $1 AND ($2::uuid IS NULL OR v.id = $2::uuid)),
          g AS (SELECT vocabulary_id, count(*) AS tags, count(builtin_index) AS builtin, count(*) FILTER (WHERE enabled) AS enabled, count(threshold) AS thresholds
                  FROM tags WHERE vocabulary_id IN (SELECT id FROM v) GROUP BY vocabulary_id),
          d AS (SELECT t.vocabulary_id, count(*) AS n FROM tag_descriptions d JOIN tags t ON t.id = d.tag_id WHERE t.vocabulary_id IN (SELECT id FROM v) GROUP BY 1),
          n AS (SELECT t.vocabulary_id, count(*) AS n FROM tag_names n JOIN tags t ON t.id = n.tag_id WHERE t.vocabulary_id IN (SELECT id FROM v) GROUP BY 1),
          a AS (SELECT vocabulary_id, count(*) AS n FROM tag_aliases WHERE vocabulary_id IN (SELECT id FROM v) GROUP BY 1)
     SELECT g.tags::int, g.builtin::int, g.enabled::int, g.thresholds::int, coalesce(d.n, 0)::int AS descriptions, coalesce(n.n, 0)::int AS names,
            coalesce(a.n, 0)::int AS aliases, count(*)::int AS vocabularies
       FROM g LEFT JOIN d USING (vocabulary_id) LEFT JOIN n USING (vocabulary_id) LEFT JOIN a USING (vocabulary_id)
      GROUP BY 1, 2, 3, 4, 5, 6, 7 ORDER BY vocabularies DESC`,
    [`${SLUG_PREFIX}%`, onlyVocabulary ?? null],
  );
  return rows;
}

/**
 * Clones tenant 0's vocabulary for tenants start…end in one transaction. Rows are inserted tenant
 * by tenant (ORDER BY), so each vocabulary's rows sit together on disk as they do when vocabularies
 * are created one at a time; rows of 25 tenants interleaved page by page made every compile read
 * 2,000 pages of tags and 5,000 of names instead of about a hundred.
 */
async function cloneBatch(pool: pg.Pool, from: BenchTenant, start: number, end: number): Promise<void> {
  const c = await pool.connect();
  try {
    await c.query('BEGIN');
    await c.query(
      `CREATE TEMP TABLE bench_bt ON COMMIT DROP AS
         SELECT g AS n, gen_random_uuid() AS tenant_id, gen_random_uuid() AS vocabulary_id FROM generate_series($1::int, $2::int) AS g`,
      [start, end],
    );
    await c.query(
      `INSERT INTO tenants (id, name, slug, created_at, updated_at)
         SELECT tenant_id, 'bench tenant ' || n, $1 || lpad(n::text, 6, '0'), now(), now() FROM bench_bt`,
      [SLUG_PREFIX],
    );
    await c.query(
      `INSERT INTO vocabularies (id, tenant_id, name, revision, from_builtin, created_at, updated_at)
         SELECT b.vocabulary_id, b.tenant_id, v.name, v.revision, v.from_builtin, v.created_at, v.updated_at
           FROM bench_bt b CROSS JOIN vocabularies v WHERE v.id = $1`,
      [from.vocabularyId],
    );
    await c.query(
      `CREATE TEMP TABLE bench_tm ON COMMIT DROP AS
         SELECT b.tenant_id, b.vocabulary_id, t.id AS old_id, gen_random_uuid() AS new_id
           FROM bench_bt b CROSS JOIN tags t WHERE t.vocabulary_id = $1`,
      [from.vocabularyId],
    );
    await c.query('ANALYZE bench_tm');
    await c.query(
      `INSERT INTO tags (id, tenant_id, vocabulary_id, name, key, threshold, enabled, builtin_index, description_state, description_error,
                         use_builtin_descriptions, revision, created_at, updated_at)
         SELECT m.new_id, m.tenant_id, m.vocabulary_id, t.name, t.key, t.threshold, t.enabled, t.builtin_index, t.description_state, t.description_error,
                t.use_builtin_descriptions, t.revision, t.created_at, t.updated_at
           FROM bench_tm m JOIN tags t ON t.id = m.old_id ORDER BY m.tenant_id, t.builtin_index NULLS LAST, t.created_at`,
    );
    await c.query(
      `INSERT INTO tag_names (id, tenant_id, tag_id, language, name)
         SELECT gen_random_uuid(), m.tenant_id, m.new_id, n.language, n.name FROM bench_tm m JOIN tag_names n ON n.tag_id = m.old_id ORDER BY m.tenant_id`,
    );
    await c.query(
      `INSERT INTO tag_aliases (id, tenant_id, vocabulary_id, tag_id, name, key, created_at)
         SELECT gen_random_uuid(), m.tenant_id, m.vocabulary_id, m.new_id, a.name, a.key, a.created_at FROM bench_tm m JOIN tag_aliases a ON a.tag_id = m.old_id`,
    );
    await c.query(
      `INSERT INTO tag_descriptions (id, tenant_id, tag_id, text, text_hash, source, position, generator_model, generator_prompt, created_at)
         SELECT gen_random_uuid(), m.tenant_id, m.new_id, d.text, d.text_hash, d.source, d.position, d.generator_model, d.generator_prompt, d.created_at
           FROM bench_tm m JOIN tag_descriptions d ON d.tag_id = m.old_id ORDER BY m.tenant_id, m.new_id, d.position`,
    );
    await c.query('COMMIT');
  } catch (e) {
    await c.query('ROLLBACK').catch(() => undefined);
    throw e;
  } finally {
    c.release();
  }
}

// ---------------------------------------------------------------- set-up

const started = now();
const database = await benchDatabase();
const db = openDatabase(database.url, 8, log);
const engine = await createLocalInferenceEngine({ packDir, maxQueue: 4096 });
const info = await engine.start();
const services = createVocabularyServices({ prisma: db.prisma, pool: db.pool, engine, log, config: vocabConfig });
const { labelBanks } = services;

print(`# Tenants on segmented label banks`);
print();
print(`pack ${info.packName} (E=${info.embedDim}, ${info.precision}, provider ${info.provider}, ${info.workers} worker(s)), PostgreSQL database ${database.name}${database.kept ? ' (kept)' : ' (scratch)'}, ${new Date().toISOString()}`);
print(
  `${TENANTS} tenants × (built-in tags + ${OWN_TAGS} own tags × ${DESCRIPTIONS} descriptions, ${DISABLED} built-in disabled, ${OVERRIDDEN} thresholds overridden); ` +
    `label-bank budget ${MiB(BANK_BUDGET)} MiB, own segments ${vocabConfig.labelBanks.precision} in segments of ≤ ${vocabConfig.labelBanks.segmentTags} tags; gc ${gc ? 'exposed' : 'NOT exposed (run with node --expose-gc)'}`,
);
print();

// 1. seeding
const seeding: [string, string][] = [];
if (database.kept) {
  // a run that stopped mid-way may have left its added tags behind
  const left = await db.pool.query(`DELETE FROM tags WHERE name LIKE 'bench added %' AND tenant_id IN (SELECT id FROM tenants WHERE slug LIKE $1)`, [`${SLUG_PREFIX}%`]);
  if (left.rowCount) seeding.push(['tags left by an earlier run, deleted', String(left.rowCount)]);
}
let existing = await listTenants(db.pool);
if (existing.some((t, i) => t.index !== i)) throw new Error(`database ${database.name} holds bench tenants that are not numbered 0…${existing.length - 1}: drop it`);

await engine.builtinVocabulary();
let firstCompileMs: number | undefined;
if (existing.length === 0) {
  let t = now();
  const tenant = await db.prisma.tenant.create({ data: { name: 'bench tenant 0', slug: slugOf(0) } });
  const vocabulary = await services.vocabularies.create(tenant.id, { name: 'bench', fromBuiltin: true });
  seeding.push(['tenant 0: vocabulary seeded from the built-in tags (services)', `${f1(now() - t)} ms`]);
  t = now();
  const inputs = Array.from({ length: OWN_TAGS }, (_, i) => ({ name: ownName(i), descriptions: ownTexts(i) }));
  for (let i = 0; i < inputs.length; i += defaults.limits.maxTagsPerRequest) {
    const added = await services.tags.add(tenant.id, vocabulary.id, inputs.slice(i, i + defaults.limits.maxTagsPerRequest));
    const failed = added.results.find((r) => !r.ok);
    if (failed) throw new Error(`adding own tag ${i + failed.index} failed: ${failed.error?.message}`);
  }
  seeding.push([`tenant 0: ${OWN_TAGS} own tags × ${DESCRIPTIONS} descriptions added (tags.add)`, `${f1(now() - t)} ms`]);
  t = now();
  const { rows: builtinRows } = await db.pool.query<{ id: string }>('SELECT id FROM tags WHERE vocabulary_id = $1 AND builtin_index IS NOT NULL ORDER BY builtin_index', [vocabulary.id]);
  // spread over the pack's order: of every 6 picks, 5 are disabled and 1 gets a threshold
  const picks = DISABLED + OVERRIDDEN;
  const step = Math.floor(builtinRows.length / picks);
  if (step < 1) throw new Error(`only ${builtinRows.length} built-in tags: cannot pick ${picks}`);
  let overridden = 0;
  for (let j = 0; j < picks; j++) {
    const id = builtinRows[j * step]!.id;
    const override = j % 6 === 5 && overridden < OVERRIDDEN;
    if (override) await services.tags.update(tenant.id, id, { threshold: 0.55 + 0.02 * overridden++ });
    else await services.tags.update(tenant.id, id, { enabled: false });
  }
  seeding.push([`tenant 0: ${DISABLED} built-in tags disabled, ${OVERRIDDEN} thresholds overridden (tags.update)`, `${f1(now() - t)} ms`]);
  existing = await listTenants(db.pool);
}
const first = existing[0]!;
const [shape0] = await shapes(db.pool, first.vocabularyId);
if (!shape0 || shape0.tags - shape0.builtin !== OWN_TAGS || shape0.tags - shape0.enabled !== DISABLED || shape0.thresholds !== OVERRIDDEN || shape0.descriptions !== OWN_TAGS * DESCRIPTIONS) {
  throw new Error(`tenant 0 of database ${database.name} is not the expected setup (${JSON.stringify(shape0)}): drop the database or change BENCH_OWN_TAGS`);
}
{
  // tenant 0's first compile: embeds the own tags' descriptions unless the database holds them
  const t = now();
  await labelBanks.forVocabulary(first.tenantId, first.vocabularyId);
  firstCompileMs = now() - t;
  const lc = labelBanks.stats().lastCompile!;
  seeding.push([
    'tenant 0: first compile (embeddings through the cache)',
    `${f1(firstCompileMs)} ms (read ${f1(lc.readMs)}, embeddings ${f1(lc.embedMs)}, segments ${f1(lc.buildMs)}; ${lc.tags} tags, ${lc.segments} segments)`,
  ]);
  await services.embeddings.flush();
}
if (existing.length < TENANTS) {
  const from = existing.length;
  const t = now();
  for (let start = from; start < TENANTS; start += CLONE_BATCH) await cloneBatch(db.pool, first, start, Math.min(TENANTS, start + CLONE_BATCH) - 1);
  const cloneMs = now() - t;
  const ta = now();
  await db.pool.query('ANALYZE tenants, vocabularies, tags, tag_names, tag_aliases, tag_descriptions');
  seeding.push([`tenants ${from}…${TENANTS - 1} cloned with SQL (batches of ${CLONE_BATCH})`, `${(cloneMs / 1000).toFixed(1)} s (${f1(cloneMs / (TENANTS - from))} ms per tenant); ANALYZE ${f1(now() - ta)} ms`]);
  existing = await listTenants(db.pool);
} else {
  seeding.push([`tenants 1…${TENANTS - 1}`, `already in database ${database.name} (${existing.length} bench tenants), not seeded again`]);
}
const tenants = existing.slice(0, TENANTS);
{
  const t = now();
  const all = await shapes(db.pool);
  const total = all.reduce((n, s) => n + s.vocabularies, 0);
  const same = all.length === 1 && all[0]!.vocabularies === existing.length;
  seeding.push([
    'clone check (count query)',
    `${same ? 'OK' : 'MISMATCH'}: ${total} vocabularies in ${all.length} shape(s); ${all
      .map((s) => `${s.vocabularies}× {tags ${s.tags} (built-in ${s.builtin}), enabled ${s.enabled}, thresholds ${s.thresholds}, descriptions ${s.descriptions}, names ${s.names}, aliases ${s.aliases}}`)
      .join('; ')} (${f1(now() - t)} ms)`,
  ]);
  if (!same) throw new Error(`the cloned vocabularies differ: ${JSON.stringify(all)}`);
}
print('## 1. Seeding');
print();
print(table(['step', 'time'], seeding));
print();

// 2. memory: every tenant compiled, round-robin, two passes
interface Cold {
  wallMs: number;
  totalMs: number;
  readMs: number;
  embedMs: number;
  buildMs: number;
}
const baseline = await collect();
const baselineBytes = labelBanks.stats().bytes;
const checkpoints = new Set([...[10, 100, 250, 500, 1000].filter((c) => c < TENANTS), TENANTS, 2 * TENANTS]);
const memoryRows: (string | number)[][] = [];
let window: Cold[] = [];
const allCold: Cold[] = [];
let peakBytes = 0;
let peakRss = 0;
const memoryStarted = now();
for (let k = 1; k <= 2 * TENANTS; k++) {
  const v = tenants[(k - 1) % TENANTS]!;
  const misses = labelBanks.stats().misses;
  const t = now();
  await labelBanks.forVocabulary(v.tenantId, v.vocabularyId);
  const wallMs = now() - t;
  const st = labelBanks.stats();
  if (st.misses > misses) {
    const lc = st.lastCompile!;
    const cold = { wallMs, totalMs: lc.totalMs, readMs: lc.readMs, embedMs: lc.embedMs, buildMs: lc.buildMs };
    window.push(cold);
    allCold.push(cold);
  }
  peakBytes = Math.max(peakBytes, st.bytes);
  peakRss = Math.max(peakRss, process.memoryUsage.rss());
  if (checkpoints.has(k)) {
    const m = await collect();
    const w = window.map((c) => c.wallMs);
    memoryRows.push([
      k,
      k <= TENANTS ? 1 : 2,
      MiB(m.rss - baseline.rss),
      MiB(m.heapUsed - baseline.heapUsed),
      MiB(m.external - baseline.external),
      MiB(m.arrayBuffers - baseline.arrayBuffers),
      st.entries,
      `${MiB(st.bytes)} / ${MiB(st.maxBytes)}`,
      st.bytes > baselineBytes ? (((m.heapUsed - baseline.heapUsed + m.arrayBuffers - baseline.arrayBuffers) / (st.bytes - baselineBytes)) * 100).toFixed(0) + '%' : '–',
      window.length,
      `${f1(median(w))} / ${f1(quantile(w, 0.95))} / ${f1(quantile(w, 1))}`,
      `${f1(median(window.map((c) => c.readMs)))} / ${f1(median(window.map((c) => c.embedMs)))} / ${f1(median(window.map((c) => c.buildMs)))}`,
    ]);
    window = [];
  }
}
const memoryMs = now() - memoryStarted;
const afterMemory = labelBanks.stats();
print('## 2. Memory: every vocabulary compiled, round-robin, two passes');
print();
print(
  `Baseline (after loading the built-in vocabulary and compiling tenant 0${gc ? ', after gc' : ''}): RSS ${MiB(baseline.rss)} MiB, heap ${MiB(baseline.heapUsed)} MiB, ` +
    `external ${MiB(baseline.external)} MiB, arrayBuffers ${MiB(baseline.arrayBuffers)} MiB. Deltas below are against it, after gc; ` +
    `compile times are of the cold compiles (misses) since the previous row, wall time of forVocabulary. ` +
    `(heap Δ + arrayBuffers Δ) / LRU Δ: what the JS heap and the array buffers grew by, over what the LRU accounts it holds beyond the baseline (100%: the accounting is exact).`,
);
print();
print(
  table(
    ['compiles', 'pass', 'RSS Δ MiB', 'heap Δ MiB', 'external Δ MiB', 'arrayBuffers Δ MiB', 'LRU entries', 'LRU MiB / budget', '(heap Δ + arrayBuffers Δ) / LRU Δ', 'cold compiles', 'cold ms median / p95 / max', 'read / embed / build ms (median)'],
    memoryRows,
  ),
);
print();
{
  const w = allCold.map((c) => c.wallMs);
  print(
    `${2 * TENANTS} forVocabulary calls in ${(memoryMs / 1000).toFixed(1)} s: ${afterMemory.misses} misses (${afterMemory.compiles} compiles, ${afterMemory.incremental} incremental), ` +
      `${afterMemory.hits} hits; peak LRU ${MiB(peakBytes)} MiB, peak RSS (no gc) ${MiB(peakRss - baseline.rss)} MiB over the baseline, ${afterMemory.oversize} oversize; ` +
      `segment arena: ${MiB(afterMemory.arena.committed)} MiB grown of ${MiB(afterMemory.arena.capacity)}, ${MiB(afterMemory.arena.used)} MiB in ${afterMemory.arena.blocks} live blocks, ${afterMemory.arena.misses} misses. ` +
      `All cold compiles: median ${f1(median(w))} ms, p95 ${f1(quantile(w, 0.95))} ms, max ${f1(quantile(w, 1))} ms ` +
      `(read ${f1(median(allCold.map((c) => c.readMs)))}, embeddings ${f1(median(allCold.map((c) => c.embedMs)))}, segments ${f1(median(allCold.map((c) => c.buildMs)))} ms median).`,
  );
  if (allCold.length > 0) {
    const perTenant = afterMemory.bytes / Math.max(1, afterMemory.entries);
    print(`One vocabulary is accounted ${MiB(perTenant)} MiB in the LRU: the budget holds about ${Math.floor(BANK_BUDGET / perTenant)} of the ${TENANTS}.`);
  }
}
print();

// 3. latency: hot vs round-robin
function loadImage(): Promise<{ bytes: Uint8Array; what: string }> {
  const candidates = [process.env.BENCH_IMAGE, path.resolve('../shared/data/images/demo4.jpg'), path.resolve('shared/data/images/demo4.jpg')].filter((p): p is string => !!p);
  for (const p of candidates) if (fs.existsSync(p)) return Promise.resolve({ bytes: new Uint8Array(fs.readFileSync(p)), what: p });
  const W = 640;
  const H = 480;
  const raw = Buffer.alloc(W * H * 3);
  const noise = rng(7);
  for (let y = 0; y < H; y++)
    for (let x = 0; x < W; x++) {
      const o = (y * W + x) * 3;
      raw[o] = Math.min(255, (x * 255) / W + noise() * 40);
      raw[o + 1] = Math.min(255, (y * 255) / H + noise() * 40);
      raw[o + 2] = Math.min(255, 128 + noise() * 80);
    }
  return sharp(raw, { raw: { width: W, height: H, channels: 3 } })
    .jpeg({ quality: 90 })
    .toBuffer()
    .then((b) => ({ bytes: new Uint8Array(b), what: 'generated 640×480 gradient + noise JPEG' }));
}
const image = await loadImage();
const base64 = Buffer.from(image.bytes).toString('base64');
const usage = new UsageRecorder(db.prisma, log);
const tagging = new TaggingService({ engine, vocabularies: labelBanks, usage, urlFetcher: undefined, limits: defaults.limits, log });
const [embedded] = await engine.encodeImages([image.bytes]);
const embeddings: ImageEmbeddings = embedded!;

const hot = tenants[0]!;
let rrNext = 1;
/** The next tenant in a rotation over tenants 1…N−1 (tenant 0 is the hot one). */
const roundRobin = () => {
  const t = tenants[rrNext]!;
  rrNext = rrNext + 1 >= TENANTS ? 1 : rrNext + 1;
  return t;
};
async function fullRequest(v: BenchTenant): Promise<number> {
  const t = now();
  const r = await tagging.tagImage(v.tenantId, v.vocabularyId, { base64 }, {});
  if (r.vocabularyId !== v.vocabularyId) throw new Error('tagged against the wrong vocabulary');
  return now() - t;
}
async function decoderOnly(v: BenchTenant): Promise<number> {
  const t = now();
  const snap = await labelBanks.forVocabulary(v.tenantId, v.vocabularyId);
  const [scored] = await engine.scoreImages([embeddings], [snap.bank!], { fairnessKey: v.tenantId });
  if (scored!.scores[0]!.probabilities.length !== snap.tags.length) throw new Error('scores do not match the snapshot');
  return now() - t;
}
const coin = rng(12345);
/** Highest RSS seen after any request of the latency pairs (no forced collection): memory while serving. */
let servingPeakRss = 0;
async function pairs(run: (v: BenchTenant) => Promise<number>): Promise<{ hot: number[]; rr: number[]; diff: number[]; coldRr: number }> {
  const result = { hot: [] as number[], rr: [] as number[], diff: [] as number[], coldRr: 0 };
  const sampled = async (v: BenchTenant) => {
    const ms = await run(v);
    servingPeakRss = Math.max(servingPeakRss, process.memoryUsage.rss());
    return ms;
  };
  for (let i = 0; i < PAIRS; i++) {
    const hotFirst = coin() < 0.5;
    const other = roundRobin();
    let h = 0;
    let r = 0;
    if (hotFirst) h = await sampled(hot);
    const misses = labelBanks.stats().misses;
    r = await sampled(other);
    if (labelBanks.stats().misses > misses) result.coldRr++;
    if (!hotFirst) h = await sampled(hot);
    result.hot.push(h);
    result.rr.push(r);
    result.diff.push(r - h);
  }
  return result;
}
// warm-up: the image encoder, the decoder on the hot bank, one round-robin of each kind
for (let i = 0; i < 2; i++) {
  await fullRequest(hot);
  await decoderOnly(hot);
}
await fullRequest(roundRobin());
await decoderOnly(roundRobin());
const latency = { full: await pairs(fullRequest), decoder: await pairs(decoderOnly) };
print('## 3. Latency: hot vocabulary vs round-robin over all tenants');
print();
print(
  `Image: ${image.what} (${(image.bytes.length / 1024).toFixed(0)} KiB). ${PAIRS} pairs each, random order within a pair; hot = tenant 0 always, ` +
    `round-robin = the next of tenants 1…${TENANTS - 1}; "cold" counts round-robin requests that had to compile. Δ = round-robin − hot, per pair.`,
);
print();
const latencyRow = (name: string, r: typeof latency.full) => {
  const ci = meanCi(r.diff);
  const ratio = median(r.rr) / median(r.hot) - 1;
  return [name, f1(median(r.hot)), f1(median(r.rr)), `${f1(ci.mean)} ± ${f1(ci.half)}`, `${(ratio * 100).toFixed(1)}%`, `${r.coldRr}/${PAIRS}`];
};
print(
  table(
    ['path', 'hot median ms', 'round-robin median ms', 'Δ mean ± 95% CI ms', 'round-robin / hot − 1 (medians)', 'cold'],
    [latencyRow('(a) full request: TaggingService.tagImage', latency.full), latencyRow('(b) decoder only: forVocabulary + scoreImages(embeddings)', latency.decoder)],
  ),
);
print();
{
  const after = await collect();
  print(
    `Memory while serving these requests (every round-robin one a cold compile): peak RSS ${MiB(servingPeakRss - baseline.rss)} MiB over the baseline without forced collections, ` +
      `${MiB(after.rss - baseline.rss)} MiB after gc at the end; LRU ${MiB(labelBanks.stats().bytes)} MiB.`,
  );
  print();
}

// 4. adding one tag to a seeded vocabulary
interface AddRow {
  index: number;
  coldMs: number;
  compiled: boolean;
  warmMs: number;
  addMs: number;
  compileMs: number;
  compileParts: string;
  nextMs: number;
  afterMs: number;
  full?: { warmMs: number; compileMs: number; nextMs: number };
}
const addRows: AddRow[] = [];
const stamp = Date.now().toString(36);
const added: { tenant: BenchTenant; ids: string[] }[] = [];
async function addTag(v: BenchTenant, name: string): Promise<number> {
  const t = now();
  const r = await services.tags.add(v.tenantId, v.vocabularyId, [{ name, descriptions: ownTexts(0) }]);
  const ms = now() - t;
  const res = r.results[0]!;
  if (!res.ok) throw new Error(`adding "${name}" failed: ${res.error?.message}`);
  const entry = added.find((a) => a.tenant === v) ?? added[added.push({ tenant: v, ids: [] }) - 1]!;
  entry.ids.push(res.tag!.id);
  return ms;
}
for (let k = 0; k < ADD_TENANTS; k++) {
  // spread over tenants 1…N−1, away from the ones the latency pairs just used when N allows
  const v = tenants[1 + ((Math.floor(((k + 0.5) * (TENANTS - 1)) / ADD_TENANTS) + rrNext + Math.floor(TENANTS / 2)) % (TENANTS - 1))]!;
  const misses = labelBanks.stats().misses;
  let t = now();
  await labelBanks.forVocabulary(v.tenantId, v.vocabularyId);
  const coldMs = now() - t;
  const compiled = labelBanks.stats().misses > misses;
  const warm: number[] = [];
  for (let i = 0; i < 3; i++) warm.push(await decoderOnly(v));
  const addMs = await addTag(v, `bench added ${stamp} ${k}`);
  t = now();
  const snap = await labelBanks.forVocabulary(v.tenantId, v.vocabularyId);
  const compileMs = now() - t;
  const lc = labelBanks.stats().lastCompile!;
  await engine.scoreImages([embeddings], [snap.bank!], { fairnessKey: v.tenantId });
  const nextMs = now() - t;
  const afterMs = await decoderOnly(v);
  const row: AddRow = {
    index: v.index,
    coldMs,
    compiled,
    warmMs: median(warm),
    addMs,
    compileMs,
    compileParts: `${f1(lc.readMs)} / ${f1(lc.embedMs)} / ${f1(lc.buildMs)} (${lc.rebuilt} tag, ${lc.segmentsBuilt} segment)`,
    nextMs,
    afterMs,
  };
  if (ADD_FULL) {
    const fw: number[] = [];
    for (let i = 0; i < 3; i++) fw.push(await fullRequest(v));
    await addTag(v, `bench added ${stamp} ${k} b`);
    const compiles = labelBanks.stats().compiles;
    const fullNext = await fullRequest(v);
    if (labelBanks.stats().compiles === compiles) throw new Error('the request after the add did not compile');
    row.full = { warmMs: median(fw), compileMs: labelBanks.stats().lastCompile!.totalMs, nextMs: fullNext };
  }
  addRows.push(row);
}
print('## 4. Adding one tag to a seeded vocabulary, then scoring the next image');
print();
print(
  `${ADD_TENANTS} tenants, each compiled (cold unless the LRU still held it), then warmed (3 decoder-only requests, median = "warm"); then tags.add of one tag with ${DESCRIPTIONS} descriptions ` +
    `already in the embedding cache (bench item 0's texts under a new name); "next" = forVocabulary (the compile) + scoreImages; "after" = the request after that.`,
);
print();
const addTable = addRows.map((r) => [
  r.index,
  `${f1(r.coldMs)}${r.compiled ? '' : ' (was cached)'}`,
  f1(r.warmMs),
  f1(r.addMs),
  f1(r.compileMs),
  r.compileParts,
  f1(r.nextMs),
  f1(r.nextMs - r.warmMs),
  f1(r.afterMs),
  ...(ADD_FULL ? [f1(r.full!.warmMs), f1(r.full!.nextMs), f1(r.full!.nextMs - r.full!.warmMs)] : []),
]);
const med = (f: (r: AddRow) => number) => f1(median(addRows.map(f)));
addTable.push([
  '**median**',
  med((r) => r.coldMs),
  med((r) => r.warmMs),
  med((r) => r.addMs),
  med((r) => r.compileMs),
  '',
  med((r) => r.nextMs),
  `**${med((r) => r.nextMs - r.warmMs)}**`,
  med((r) => r.afterMs),
  ...(ADD_FULL ? [med((r) => r.full!.warmMs), med((r) => r.full!.nextMs), `**${med((r) => r.full!.nextMs - r.full!.warmMs)}**`] : []),
]);
print(
  table(
    [
      'tenant',
      'first forVocabulary ms',
      'warm ms',
      'tags.add ms',
      'compile ms',
      'read / embed / build ms',
      'next ms',
      'next − warm ms',
      'after ms',
      ...(ADD_FULL ? ['tagImage warm ms', 'tagImage next ms', 'tagImage next − warm ms'] : []),
    ],
    addTable,
  ),
);
print();
for (const a of added) await services.tags.remove(a.tenant.tenantId, a.ids);

// 5. what was run, where
const knobs = ['DATABASE_URL', 'OMNITAG_MODEL_PACK', 'OMNITAG_LABEL_BANK_PRECISION', 'OMNITAG_LABEL_BANK_SEGMENT_TAGS', 'BENCH_TENANTS', 'BENCH_OWN_TAGS', 'BENCH_PAIRS', 'BENCH_BANK_BUDGET', 'BENCH_KEEP_DB', 'BENCH_ADD_TENANTS', 'BENCH_ADD_FULL', 'BENCH_IMAGE', 'MALLOC_MMAP_THRESHOLD_', 'MALLOC_ARENA_MAX']
  .filter((k) => process.env[k])
  .map((k) => `${k}=${process.env[k]}`);
const cpus = os.cpus();
print('## Run');
print();
print('```');
print(`${knobs.join(' ')} node ${process.execArgv.join(' ')} ${path.relative(process.cwd(), process.argv[1] ?? 'bench/tenants.bench.ts')}`);
print('```');
print();
print(
  `${cpus[0]?.model ?? 'unknown CPU'}, ${cpus.length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, ${os.type()} ${os.release()}, Node ${process.version}; ` +
    `finished in ${((now() - started) / 1000).toFixed(0)} s.`,
);

await usage.stop();
await services.stop();
await engine.dispose();
await db.close();
await database.drop();
