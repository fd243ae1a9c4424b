/**
 * What a stored image costs in PostgreSQL: stores `--images` images with encodings of the
 * pack's [T, E] (float16 and float32, values drawn like activations: normal, so nothing
 * compresses that real encodings would not) and `--scores` kept tag scores each, then reads the
 * tables' sizes (heap, TOAST and indexes) and divides. No model runs: the bytes are what matters.
 * Usage: OMNITAG_TEST_PG_SERVER=postgresql://postgres@127.0.0.1:5432/test \
 *   npx tsx bench/library-storage.bench.ts [--tokens 145] [--dim 512] [--images 300] [--scores 20] [--thumbnail 4000]
 */
import { randomUUID } from 'node:crypto';
import { Command } from 'commander';
import { pino } from 'pino';
import { openDatabase } from '../src/db/client.ts';
import { float32ToFloat16 } from '../src/inference/index.ts';
import { LibraryRepository, type EncodingDtype } from '../src/library/index.ts';
import { applyMigrations } from '../src/db/migrate.ts';
import { createServerDatabase } from '../test/support/database.ts';

const o = new Command()
  .option('--tokens <n>', 'T', '145')
  .option('--dim <n>', 'E', '512')
  .option('--images <n>', 'images per dtype', '300')
  .option('--scores <n>', 'kept tag scores per image', '20')
  .option('--thumbnail <bytes>', 'thumbnail bytes per image (0: none)', '4000')
  .parse()
  .opts();
const [T, E, N, K, THUMB] = [o.tokens, o.dim, o.images, o.scores, o.thumbnail].map(Number) as [number, number, number, number, number];

function normal(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let x = seed;
  const rnd = () => (x = (x * 1103515245 + 12345) % 2147483648) / 2147483648 || 1e-9;
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(rnd())) * Math.cos(2 * Math.PI * rnd());
  return out;
}

const rows: string[] = [];
for (const dtype of ['float16', 'float32'] as EncodingDtype[]) {
  const testDb = await createServerDatabase();
  await applyMigrations(testDb.url);
  const db = openDatabase(testDb.url, 4, pino({ level: 'silent' }));
  const p = db.prisma;
  const tenant = await p.tenant.create({ data: { name: 'bench', slug: `bench-${Date.now()}` } });
  const vocab = await p.vocabulary.create({ data: { tenantId: tenant.id, name: 'bench' } });
  const tagIds = Array.from({ length: K }, () => randomUUID());
  await p.tag.createMany({ data: tagIds.map((id, i) => ({ id, tenantId: tenant.id, vocabularyId: vocab.id, name: `tag ${i}`, key: `tag ${i}` })) });
  const repo = new LibraryRepository(p);
  for (let i = 0; i < N; i++) {
    const values = normal(T * E, i + 1);
    const bytes = dtype === 'float16' ? new Uint8Array(float32ToFloat16(values).buffer) : new Uint8Array(values.buffer);
    const image = await repo.insertImage(tenant.id, {
      sha256: `${i}`.padStart(64, '0'),
      externalId: `img-${i}`,
      format: 'jpeg',
      width: 4000,
      height: 3000,
      byteSize: 3_000_000,
      encoding: { dtype, tokens: T, dim: E, encoderId: 'e'.repeat(64), bytes },
      thumbnail: THUMB ? { bytes: new Uint8Array(normal(THUMB / 4, i + 7).buffer), type: 'image/webp' } : null,
    });
    await repo.writeResult(tenant.id, { imageId: image.id, vocabularyId: vocab.id, revision: 1, scoreFloor: 0.05, scores: tagIds.map((tagId, k) => ({ tagId, score: 0.05 + k / (2 * K), logit: k / K, passed: k % 3 === 0 })) });
  }
  await p.$executeRawUnsafe('VACUUM ANALYZE library_images, image_results, image_tag_scores');
  const size = async (t: string) => Number((await p.$queryRawUnsafe<{ n: bigint }[]>(`SELECT pg_total_relation_size('${t}') AS n`))[0]!.n);
  const [images, results, scores] = [await size('library_images'), await size('image_results'), await size('image_tag_scores')];
  rows.push(`| ${T} × ${E} | ${dtype} | ${T * E * (dtype === 'float16' ? 2 : 4)} | ${THUMB} | ${N} | ${Math.round(images / N)} | ${Math.round(results / N)} | ${Math.round(scores / (N * K))} | ${Math.round((images + results + scores) / N)} |`);
  await db.close();
  await testDb.drop();
}
console.log(`| T × E | dtype | encoding bytes | thumbnail bytes | images | library_images bytes/image | image_results bytes/image | image_tag_scores bytes/score | total bytes/image (${K} scores) |`);
console.log('|---|---|---|---|---|---|---|---|---|');
for (const r of rows) console.log(r);
