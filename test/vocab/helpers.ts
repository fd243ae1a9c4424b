import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { openDatabase, type Database } from '../../src/db/client.ts';
import type { InferenceEngine } from '../../src/inference/runtime/engine.ts';
import { createLocalInferenceEngine } from '../../src/inference/runtime/local-engine.ts';
import { ClipTokenizer } from '../../src/inference/text/tokenizer.ts';
import { createVocabularyServices, type VocabularyConfig, type VocabularyServices } from '../../src/vocab/index.ts';
import { createMigratedDatabase, databaseMode, type TestDatabase } from '../support/database.ts';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const tinyPack = path.join(repoRoot, 'packs', 'tiny');
export const silentLog = pino({ level: 'silent' });
export { databaseMode };

export const baseConfig: VocabularyConfig = {
  llm: { baseUrl: undefined, model: 'fake-model', temperature: 0.99, concurrency: 4, timeoutMs: 5_000, maxRetries: 2, retryBaseMs: 10, retryMaxMs: 2_000 },
  cache: { embeddingBytes: 64 * 1024 * 1024, labelBankBytes: 512 * 1024 * 1024 },
  worker: { enabled: true, pollIntervalMs: 50, leaseMs: 10_000, retryBaseMs: 20, concurrency: 2 },
};

let tokenizer: Promise<ClipTokenizer> | undefined;
export const tinyTokenizer = () => (tokenizer ??= ClipTokenizer.fromFile(path.join(tinyPack, 'tokenizer.json')));

export interface VocabTestEnv {
  testDb: TestDatabase;
  db: Database;
  engine: InferenceEngine;
  tenantA: string;
  tenantB: string;
  /** Services over the shared database client (each call: a new "replica" with its own caches). */
  services(config?: Partial<VocabularyConfig>, client?: Database): Promise<VocabularyServices>;
  /** A second client on the real PostgreSQL (embedded mode has one connection: the same client). */
  openClient(): Database;
  /** Stops every services instance made so far (their workers hand their items back). */
  stopServices(): Promise<void>;
  close(): Promise<void>;
}

/** A migrated database with two tenants, the tiny pack's engine, and a services factory. */
export async function setupVocabEnv(): Promise<VocabTestEnv> {
  const testDb = await createMigratedDatabase();
  const embedded = databaseMode === 'embedded';
  const db = openDatabase(testDb.url, embedded ? 1 : 6, silentLog);
  const engine = await createLocalInferenceEngine({ packDir: tinyPack, workers: 1, maxQueue: 4096 });
  await engine.start();
  const [a, b] = await Promise.all([
    db.prisma.tenant.create({ data: { name: 'Tenant A', slug: `a-${Date.now()}` } }),
    db.prisma.tenant.create({ data: { name: 'Tenant B', slug: `b-${Date.now()}` } }),
  ]);
  const started: VocabularyServices[] = [];
  const clients: Database[] = [];
  return {
    testDb,
    db,
    engine,
    tenantA: a.id,
    tenantB: b.id,
    async services(config = {}, client = db) {
      const s = createVocabularyServices({
        prisma: client.prisma,
        pool: client.pool,
        engine,
        log: silentLog,
        config: { ...baseConfig, ...config, worker: { ...baseConfig.worker, ...config.worker } },
      });
      started.push(s);
      return s;
    },
    openClient() {
      if (embedded) return db;
      const c = openDatabase(testDb.url, 4, silentLog);
      clients.push(c);
      return c;
    },
    async stopServices() {
      await Promise.allSettled(started.splice(0).map((s) => s.stop()));
    },
    async close() {
      await Promise.allSettled(started.map((s) => s.stop()));
      await Promise.allSettled(clients.map((c) => c.close()));
      await engine.dispose();
      await db.close();
      await testDb.whenIdle();
      await testDb.drop();
    },
  };
}

/** Polls until `check` returns a value (not undefined) or the deadline passes. */
export async function eventually<T>(check: () => Promise<T | undefined>, what: string, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
