import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gql, PLATFORM_KEY } from '../support/app.ts';
import { copyEmbeddedTemplate, createMigratedDatabase, databaseMode, type TestDatabase } from '../support/database.ts';
import { startServerProcess, type ServerProcess } from '../support/server-process.ts';
import { createTenantWithKeys, type TestTenant } from '../support/tenants.ts';

const LEASE_MS = 2_000;
const IMAGES = 24;
const JOB = `query($id: ID!) {
  importJob(id: $id) {
    state total succeeded failed pending running
    items(first: 100) { edges { node { index state attempts imageId duplicate errorCode } } }
  }
}`;

/** Noisy JPEGs of different sizes: each one decodes and encodes for a while, and no two share bytes. */
async function noisyJpeg(seed: number): Promise<string> {
  const w = 640 + seed;
  const h = 480;
  const raw = Buffer.alloc(w * h * 3);
  let x = seed * 2654435761;
  for (let i = 0; i < raw.length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    raw[i] = x >>> 24;
  }
  return (await sharp(raw, { raw: { width: w, height: h, channels: 3 } }).jpeg({ quality: 95 }).toBuffer()).toString('base64');
}

// A real Omnitag process is killed (SIGKILL: no clean stop, no hand-back) in the middle of an
// import; a second process on the same database takes the job over once the dead one's lease
// has run out. On the embedded database the second process opens the same data directory.
describe(`an import survives its process being killed (${databaseMode} database)`, () => {
  let db: TestDatabase | undefined;
  let dataDir: string;
  let env: Record<string, string>;
  let first: ServerProcess | undefined;
  let second: ServerProcess | undefined;
  let tenant: TestTenant;
  let vocabId: string;

  beforeAll(async () => {
    dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'omnitag-import-crash-'));
    if (databaseMode === 'postgresql') db = await createMigratedDatabase();
    else await copyEmbeddedTemplate('migrated', path.join(dataDir, 'pg'));
    env = {
      ...(db ? { DATABASE_URL: db.url, OMNITAG_MIGRATE_ON_START: 'false' } : {}),
      OMNITAG_DATA_DIR: dataDir,
      OMNITAG_PLATFORM_ADMIN_KEY: PLATFORM_KEY,
      OMNITAG_INFERENCE_WORKERS: '1',
      OMNITAG_INTRA_OP_THREADS: '1',
      OMNITAG_JOB_LEASE_MS: String(LEASE_MS),
      OMNITAG_LIBRARY_WORKER_CONCURRENCY: '1',
      OMNITAG_SHUTDOWN_TIMEOUT_MS: '2000',
    };
    first = await startServerProcess(env);
    tenant = await createTenantWithKeys(first.url, 'Crash');
    vocabId = (await gql(first.url, 'mutation { createVocabulary(input: { name: "v" }) { id } }', {}, tenant.adminKey)).data!.createVocabulary.id;
    await gql(first.url, 'mutation($v: ID!) { addTags(vocabularyId: $v, tags: [{ name: "cat" }, { name: "dog" }]) { results { ok } } }', { v: vocabId }, tenant.adminKey);
  }, 180_000);

  afterAll(async () => {
    for (const p of [first, second]) if (p && p.child.exitCode === null && p.child.signalCode === null) await p.stop('SIGTERM');
    await db?.drop();
    await fs.rm(dataDir, { recursive: true, force: true });
  });

  it('resumes on another process: every image stored once, every item finished once', async () => {
    const images = await Promise.all(Array.from({ length: IMAGES }, (_, i) => noisyJpeg(i)));
    // one image twice: a duplicate must stay one stored image whatever the crash did
    const sent = [...images, images[0]!].map((base64, i) => ({ base64, externalId: i < IMAGES ? `photo-${i}` : null }));
    const queued = await gql(first!.url, 'mutation($v: ID!, $i: [ImageInput!]!) { importImages(vocabularyId: $v, images: $i) { id } }', { v: vocabId, i: sent }, tenant.clientKey);
    expect(queued.errors).toBeUndefined();
    const id = queued.data!.importImages.id as string;

    // Kill the first process as soon as it has stored a few images (read straight from the
    // database, so the poll itself adds no work to the process).
    const probe = db ? new pg.Client({ connectionString: db.url }) : undefined;
    let atKill: { succeeded: number } | undefined;
    // the last reading before the kill (the process may go on a little until the signal lands)
    if (probe) {
      await probe.connect();
      for (let i = 0; i < 2_000 && !atKill; i++) {
        const r = await probe.query<{ succeeded: number }>('SELECT succeeded FROM library_jobs WHERE id = $1', [id]);
        if (r.rows[0]!.succeeded >= 3) atKill = r.rows[0]!;
        else await new Promise((res) => setTimeout(res, 10));
      }
    } else {
      // the embedded database takes one connection, the server's: ask the server
      for (let i = 0; i < 2_000 && !atKill; i++) {
        const job = (await gql(first!.url, JOB, { id }, tenant.clientKey)).data!.importJob;
        if (job.succeeded >= 3) atKill = job;
        else await new Promise((res) => setTimeout(res, 10));
      }
    }
    expect(atKill).toBeDefined();
    expect(atKill!.succeeded).toBeLessThan(IMAGES + 1);
    await first!.stop('SIGKILL');
    if (probe) {
      const left = await probe.query<{ state: string }>('SELECT state FROM library_jobs WHERE id = $1', [id]);
      expect(left.rows[0]!.state).toBe('RUNNING'); // mid-way: the kill came before the end
      await probe.end();
    }

    second = await startServerProcess(env);
    const done = await (async () => {
      for (let i = 0; i < 600; i++) {
        const job = (await gql(second!.url, JOB, { id }, tenant.clientKey)).data!.importJob;
        if (/SUCCEEDED|FAILED/.test(job.state)) return job;
        await new Promise((res) => setTimeout(res, 100));
      }
      throw new Error('the import did not finish on the second process');
    })();
    expect(done).toMatchObject({ state: 'SUCCEEDED', total: IMAGES + 1, succeeded: IMAGES + 1, failed: 0, pending: 0, running: 0 });
    const items = done.items.edges.map((e: any) => e.node);
    expect(items.every((i: any) => i.state === 'SUCCEEDED' && i.imageId && i.errorCode === null)).toBe(true);
    // nothing duplicated: one stored image per distinct image, the repeated one pointing at the first
    expect(new Set(items.map((i: any) => i.imageId)).size).toBe(IMAGES);
    expect(items[IMAGES].imageId).toBe(items[0].imageId);
    const listed = await gql(second!.url, 'query($v: ID!) { images(vocabularyId: $v, first: 100) { totalCount edges { node { id externalId } } } }', { v: vocabId }, tenant.clientKey);
    expect(listed.errors).toBeUndefined();
    expect(listed.data!.images.totalCount).toBe(IMAGES);
    const byExternal = new Map(listed.data!.images.edges.map((e: any) => [e.node.externalId, e.node.id]));
    for (let i = 0; i < IMAGES; i++) expect(byExternal.get(`photo-${i}`)).toBe(items[i].imageId);
  }, 240_000);
});
