/**
 * The image library (issue 17) on the full-size pack and PostgreSQL: storage per image,
 * re-tagging 10,000 stored images against 50 new tags (decoder only) side by side with what
 * re-encoding them would cost, `searchImages` over them, and imports against plain tagImage.
 *
 *   DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test OMNITAG_MODEL_PACK=packs/full \
 *     npx tsx bench/library.bench.ts
 *
 * BENCH_STORED: stored images to seed (10000); BENCH_NEW_TAGS: tags added (50); BENCH_SEARCHES:
 * searchImages queries (5, at most 5); BENCH_IMAGES:
 * the real photos (../shared/data/images). The stored rows are seeded from the real photos'
 * encodings with small perturbations (each value × (1 + N(0, 0.01))): the decoder's cost does
 * not depend on the values, and the rows differ as stored images would. Creates a scratch
 * database on the server and drops it after.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import sharp from 'sharp';
import { App } from '../src/app.ts';
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/core/log.ts';
import { applyMigrations } from '../src/db/migrate.ts';
import { float32ToFloat16 } from '../src/inference/index.ts';

const serverUrl = process.env.DATABASE_URL;
if (!serverUrl) throw new Error('set DATABASE_URL to a PostgreSQL server (the bench makes a scratch database on it)');
const packDir = process.env.OMNITAG_MODEL_PACK ?? 'packs/full';
const STORED = Number(process.env.BENCH_STORED ?? 10_000);
const NEW_TAGS = Number(process.env.BENCH_NEW_TAGS ?? 50);
const SEARCHES = Number(process.env.BENCH_SEARCHES ?? 5);
const imagesDir = path.resolve(process.env.BENCH_IMAGES ?? '../shared/data/images');
const PLATFORM_KEY = 'bench-platform-admin-key-0123456789';

/** One GraphQL operation over HTTP; throws on errors. */
async function gql(url: string, query: string, variables: Record<string, unknown>, key: string): Promise<{ data: Record<string, any> }> {
  const res = await fetch(`${url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` }, body: JSON.stringify({ query, variables }) });
  const body = (await res.json()) as { data?: Record<string, any>; errors?: unknown[] };
  if (body.errors) throw new Error(JSON.stringify(body.errors));
  return { data: body.data! };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
const now = () => performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---- a scratch database and the real server on it ----
const name = `omnitag_bench_${randomBytes(4).toString('hex')}`;
const admin = new pg.Client({ connectionString: serverUrl });
await admin.connect();
await admin.query(`CREATE DATABASE ${name}`);
const dbUrl = new URL(serverUrl);
dbUrl.pathname = `/${name}`;
await applyMigrations(dbUrl.toString());
const sql = new pg.Client({ connectionString: dbUrl.toString() });
await sql.connect();

const config = loadConfig({
  HOST: '127.0.0.1',
  PORT: '0',
  LOG_LEVEL: 'warn',
  DATABASE_URL: dbUrl.toString(),
  OMNITAG_MIGRATE_ON_START: 'false',
  OMNITAG_MODEL_PACK: packDir,
  OMNITAG_PLATFORM_ADMIN_KEY: PLATFORM_KEY,
  OMNITAG_MAX_QUEUE: '4096',
  ...Object.fromEntries(['REQUESTS_PER_SECOND', 'IMAGES_PER_MINUTE', 'IMAGES_PER_DAY', 'MAX_VOCABULARIES', 'MAX_TAGS', 'LLM_GENERATIONS_PER_DAY', 'MAX_STORED_IMAGES'].map((n) => [`OMNITAG_DEFAULT_${n}`, '0'])),
});
const app = new App(config, createLogger('warn'));
await app.start();
const { engine } = app.services;
const info = engine.info;
console.log(`pack ${info.packName} (T=${info.imageTokens}, E=${info.embedDim}), encodings ${config.library.encoding}, PostgreSQL, ${STORED} stored images, ${NEW_TAGS} new tags`);

try {
  const tenantId = (await gql(app.url, 'mutation { createTenant(input: { name: "Bench" }) { id } }', {}, PLATFORM_KEY)).data.createTenant.id as string;
  const adminKey = (await gql(app.url, 'mutation($t: ID!) { createApiKey(input: { name: "a", role: ADMIN, tenantId: $t }) { secret } }', { t: tenantId }, PLATFORM_KEY)).data.createApiKey.secret as string;
  const tenant = { id: tenantId, adminKey, clientKey: adminKey };
  const vocabId = (await gql(app.url, 'mutation { createVocabulary(input: { name: "photos" }) { id } }', {}, tenant.adminKey)).data.createVocabulary.id as string;
  const first = Array.from({ length: 10 }, (_, i) => ({ name: `subject ${i}` }));
  await gql(app.url, 'mutation($v: ID!, $t: [TagInput!]!) { addTags(vocabularyId: $v, tags: $t) { results { ok } } }', { v: vocabId, t: first }, tenant.adminKey);

  // ---- the encoder on real photos (what re-encoding a stored image would cost) ----
  const files = (await readdir(imagesDir)).filter((f) => /\.(jpe?g|png|webp)$/i.test(f)).sort();
  const photos = await Promise.all(files.map((f) => readFile(path.join(imagesDir, f))));
  const pixels = await Promise.all(photos.map((p) => sharp(p).resize(info.imageSize, info.imageSize, { fit: 'fill' }).jpeg({ quality: 95 }).toBuffer()));
  await engine.encodeImages([new Uint8Array(pixels[0]!)]); // warm
  const encodeMs: number[] = [];
  const encodings: Float32Array[] = [];
  for (const p of photos) {
    const t0 = now();
    const [e] = await engine.encodeImages([new Uint8Array(p)]);
    encodeMs.push(now() - t0);
    encodings.push(e!.data);
  }
  const encoderMs = median(encodeMs);
  console.log(`\nimage encoder per photo (decode + resize + Swin-L), ${files.length} photos: median ${encoderMs.toFixed(0)} ms [${encodeMs.map((m) => m.toFixed(0)).join(', ')}]`);

  // ---- import throughput vs plain tagImage (distinct bytes: a stored duplicate would skip the encoder) ----
  const variants = (await Promise.all(photos.map((p) => Promise.all([0.9, 0.8].map((s) => sharp(p).resize({ width: Math.round(1024 * s) }).jpeg({ quality: 90 }).toBuffer()))))).flat();
  const tagMs: number[] = [];
  for (const v of variants) {
    const t0 = now();
    await gql(app.url, 'mutation($v: ID!, $i: String!) { tagImage(vocabularyId: $v, image: { base64: $i }) { revision } }', { v: vocabId, i: v.toString('base64') }, tenant.clientKey);
    tagMs.push(now() - t0);
  }
  const tagTotal = tagMs.reduce((a, b) => a + b, 0);
  const t0 = now();
  const queued = await gql(app.url, 'mutation($v: ID!, $i: [ImageInput!]!) { importImages(vocabularyId: $v, images: $i) { id } }', { v: vocabId, i: variants.map((v) => ({ base64: v.toString('base64') })) }, tenant.clientKey);
  for (;;) {
    const j = (await gql(app.url, 'query($id: ID!) { importJob(id: $id) { state succeeded } }', { id: queued.data.importImages.id }, tenant.clientKey)).data.importJob;
    if (j.state !== 'QUEUED' && j.state !== 'RUNNING') {
      if (j.succeeded !== variants.length) throw new Error(`import ended ${j.state}`);
      break;
    }
    await sleep(50);
  }
  const importTotal = now() - t0;
  console.log(`\n${variants.length} photos (0.8–0.9 × 1024 px wide JPEGs):`);
  console.log(`  tagImage one at a time:           ${(tagTotal / 1000).toFixed(1)} s, ${((variants.length * 1000) / tagTotal).toFixed(2)} images/s (median ${median(tagMs).toFixed(0)} ms)`);
  console.log(`  importImages (worker concurrency ${config.libraryJobs.concurrency}): ${(importTotal / 1000).toFixed(1)} s, ${((variants.length * 1000) / importTotal).toFixed(2)} images/s (stored, with thumbnails)`);

  // ---- storage per image ----
  const sizes = (
    await sql.query<{ rows: string; encoding: string; thumbnail: string; table_bytes: string; scores: string; score_bytes: string }>(`
      SELECT count(*) AS rows, avg(pg_column_size(encoding)) AS encoding, avg(coalesce(pg_column_size(thumbnail), 0)) AS thumbnail,
             pg_total_relation_size('library_images') AS table_bytes,
             (SELECT count(*) FROM image_tag_scores) AS scores, pg_total_relation_size('image_tag_scores') + pg_total_relation_size('image_results') AS score_bytes
        FROM library_images`)
  ).rows[0]!;
  const n = Number(sizes.rows);
  console.log(`\nstorage of the ${n} imported images (${config.library.encoding} encodings, thumbnails ${config.library.thumbnail?.maxEdge ?? 0} px):`);
  console.log(`  encoding ${Number(sizes.encoding).toFixed(0)} B (raw ${info.imageTokens * info.embedDim * (config.library.encoding === 'float16' ? 2 : 4)} B), thumbnail ${Number(sizes.thumbnail).toFixed(0)} B, library_images ${(Number(sizes.table_bytes) / n).toFixed(0)} B/image with indexes and TOAST`);
  console.log(`  results: ${(Number(sizes.scores) / n).toFixed(1)} tag scores/image (floor ${config.library.scoreFloor}), ${(Number(sizes.score_bytes) / n).toFixed(0)} B/image with indexes`);

  // ---- seed the stored images from the real encodings ----
  const revision = (await gql(app.url, 'query($v: ID!) { vocabulary(id: $v) { revision } }', { v: vocabId }, tenant.clientKey)).data.vocabulary.revision as number;
  const tSeed = now();
  const CHUNK = 250;
  let seeded = 0;
  while (seeded < STORED) {
    const count = Math.min(CHUNK, STORED - seeded);
    const ids: string[] = [];
    const shas: string[] = [];
    const blobs: Buffer[] = [];
    for (let k = 0; k < count; k++) {
      const base = encodings[(seeded + k) % encodings.length]!;
      const v = new Float32Array(base.length);
      for (let i = 0; i < v.length; i++) v[i] = base[i]! * (1 + 0.01 * gaussian());
      const stored = config.library.encoding === 'float16' ? float32ToFloat16(v) : v;
      const bytes = Buffer.from(stored.buffer, stored.byteOffset, stored.byteLength);
      ids.push(randomUUID());
      shas.push(createHash('sha256').update(bytes).digest('hex'));
      blobs.push(bytes);
    }
    await sql.query(
      `INSERT INTO library_images (id, tenant_id, sha256, format, width, height, byte_size, encoder_id, encoding_dtype, encoding_tokens, encoding_dim, encoding)
       SELECT u.id, $1, u.sha, 'jpeg', 1024, 768, 200000, $2, $3::"EncodingDtype", $4, $5, u.enc FROM unnest($6::uuid[], $7::text[], $8::bytea[]) AS u(id, sha, enc)`,
      [tenant.id, info.imageEncoderId, config.library.encoding === 'float16' ? 'FLOAT16' : 'FLOAT32', info.imageTokens, info.embedDim, ids, shas, blobs],
    );
    await sql.query(
      `INSERT INTO image_results (tenant_id, image_id, vocabulary_id, revision, score_floor, updated_at) SELECT $1, u.id, $2, $3, $4, now() FROM unnest($5::uuid[]) AS u(id)`,
      [tenant.id, vocabId, revision, config.library.scoreFloor, ids],
    );
    seeded += count;
  }
  await sql.query('ANALYZE');
  console.log(`\nseeded ${STORED} stored images in ${((now() - tSeed) / 1000).toFixed(1)} s`);

  // ---- re-tagging: NEW_TAGS tags added, every stored image re-scored against them only ----
  const total = STORED + n;
  const tAdd = now();
  const tags = Array.from({ length: NEW_TAGS }, (_, i) => ({ name: `new concept ${i}` }));
  await gql(app.url, 'mutation($v: ID!, $t: [TagInput!]!) { addTags(vocabularyId: $v, tags: $t) { results { ok } } }', { v: vocabId, t: tags }, tenant.adminKey);
  let firstMoved: { at: number; behind: number } | undefined;
  for (;;) {
    const v = (await gql(app.url, 'query($v: ID!) { vocabulary(id: $v) { revision retagging { state imagesBehind } } }', { v: vocabId }, tenant.clientKey)).data.vocabulary;
    const behind = v.retagging?.imagesBehind ?? total;
    if (!firstMoved && behind < total) firstMoved = { at: now(), behind };
    if (v.retagging?.state === 'SUCCEEDED' && behind === 0) break;
    if (v.retagging?.state === 'FAILED') throw new Error('re-tagging failed');
    await sleep(200);
  }
  const retagMs = now() - tAdd;
  const steady = firstMoved ? (firstMoved.behind * 1000) / (now() - firstMoved.at) : NaN;
  const perSec = (total * 1000) / retagMs;
  const reencodePerSec = 1000 / encoderMs;
  console.log(`\nre-tagging ${total} stored images against ${NEW_TAGS} new tags (addTags → job done, incl. embedding the tags' descriptions): ${(retagMs / 1000).toFixed(1)} s`);
  console.log(`  ${perSec.toFixed(0)} images/s end to end, ${steady.toFixed(0)} images/s once scoring started`);
  console.log(`  re-encoding instead (encoder only, one at a time): ${reencodePerSec.toFixed(2)} images/s → ${(total / reencodePerSec / 60).toFixed(0)} min`);
  console.log(`  ratio: ${(perSec / reencodePerSec).toFixed(0)}× end to end, ${(steady / reencodePerSec).toFixed(0)}× steady (target ≥ 50×)`);

  // ---- searchImages over the stored images ----
  const searchMs: number[] = [];
  for (const text of ['red panda', 'a bicycle', 'snowy mountain', 'birthday cake', 'harbour at night'].slice(0, SEARCHES)) {
    const ts = now();
    await gql(app.url, 'query($v: ID, $t: String!) { searchImages(vocabularyId: $v, text: $t, first: 10) { scanned hits { score } } }', { v: vocabId, t: text }, tenant.clientKey);
    searchMs.push(now() - ts);
  }
  console.log(`\nsearchImages over ${total} stored images (first: 10), ${searchMs.length} queries: p50 ${median(searchMs).toFixed(0)} ms [${searchMs.map((m) => m.toFixed(0)).join(', ')}]`);
} finally {
  await app.stop();
  await sql.end();
  await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.end();
}

function gaussian(): number {
  const u = 1 - Math.random();
  const v = Math.random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}
