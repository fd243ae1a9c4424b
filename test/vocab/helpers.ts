import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { openDatabase, type Database } from '../../src/db/client.ts';
import type { InferenceEngine } from '../../src/inference/runtime/engine.ts';
import { createLocalInferenceEngine } from '../../src/inference/runtime/local-engine.ts';
import { ClipTokenizer } from '../../src/inference/text/tokenizer.ts';
import { createVocabularyServices, type DescriptionView, type TagView, type VocabularyConfig, type VocabularyServices } from '../../src/vocab/index.ts';
import { nameKey, normalizeText } from '../../src/vocab/use-cases/names.ts';
import { createMigratedDatabase, databaseMode, type TestDatabase } from '../support/database.ts';
import { FakeLlmServer } from '../support/fake-llm-server.ts';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const tinyPack = path.join(repoRoot, 'packs', 'tiny');
export const silentLog = pino({ level: 'silent' });
export { databaseMode };

type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? DeepPartial<T[K]> : T[K] };
export type ConfigOverrides = DeepPartial<VocabularyConfig>;

/** Plain objects are merged key by key; anything else (values, arrays) replaces. */
function merge<T>(base: T, over: DeepPartial<T> | undefined): T {
  const plain = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (over === undefined) return base;
  if (!plain(base) || !plain(over)) return over as T;
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) if (v !== undefined) out[k] = merge(base[k], v as DeepPartial<unknown>);
  return out as T;
}

const defaults = loadConfig({});

/** The configuration's defaults with the LLM, caches and worker sized for tests (fast retries and polls, short leases). */
export const baseConfig: VocabularyConfig = merge<VocabularyConfig>(
  { llm: defaults.llm, cache: defaults.cache, labelBanks: defaults.labelBanks, vocab: defaults.vocab, descriptionWorker: true, limits: { maxTagsPerRequest: defaults.limits.maxTagsPerRequest } },
  {
    llm: { model: 'fake-model', timeoutMs: 5_000, maxRetries: 2, retryBaseMs: 10, retryMaxMs: 2_000 },
    cache: { embeddingBytes: 64 * 1024 * 1024 },
    labelBanks: { cacheBytes: 512 * 1024 * 1024 },
    vocab: { worker: { pollIntervalMs: 50, leaseMs: 10_000, renewEveryMs: 3_000, retryBaseMs: 20, concurrency: 2 } },
  },
);

/** `baseConfig` with some values changed. */
export const testConfig = (overrides: ConfigOverrides = {}): VocabularyConfig => merge(baseConfig, overrides);

let tokenizer: Promise<ClipTokenizer> | undefined;
export const tinyTokenizer = () => (tokenizer ??= ClipTokenizer.fromFile(path.join(tinyPack, 'tokenizer.json')));

export interface VocabTestEnv {
  testDb: TestDatabase;
  db: Database;
  engine: InferenceEngine;
  tenantA: string;
  tenantB: string;
  /** Services over the shared database client (each call: a new "replica" with its own caches). */
  services(config?: ConfigOverrides, client?: Database): Promise<VocabularyServices>;
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
        config: testConfig(config),
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

export { eventually } from '../support/eventually.ts';

/** A tag by id through the DataLoader path (undefined for another tenant's or a missing one). */
export async function tagById(s: VocabularyServices, tenantId: string, id: string): Promise<TagView | undefined> {
  return (await s.tags.getMany(tenantId, [id])).get(id);
}

/** A tag's descriptions through the DataLoader path (empty for another tenant's tag). */
export async function descriptionsOf(s: VocabularyServices, tenantId: string, tagId: string): Promise<DescriptionView[]> {
  return (await s.descriptions.listForTags(tenantId, [tagId])).get(tagId) ?? [];
}

/** The tag with exactly this name (normalised, case-insensitive), found through the listing's search. */
export async function tagNamed(s: VocabularyServices, tenantId: string, vocabularyId: string, name: string): Promise<TagView | undefined> {
  const key = nameKey(normalizeText(name));
  const page = await s.tags.list(tenantId, vocabularyId, { first: 10_000, search: key });
  return page.nodes.find((t) => t.key === key);
}

/** Random pixels of a pack's input size: the tiny pack's scores carry no meaning, only shapes and equality. */
export function randomPixels(size: number, seed: number): { pixels: Float32Array } {
  const p = new Float32Array(3 * size * size);
  let x = seed;
  for (let i = 0; i < p.length; i++) p[i] = ((x = (x * 1103515245 + 12345) % 2147483648) / 2147483648) * 4 - 2;
  return { pixels: p };
}

/**
 * A vocabulary environment and a fake LLM server shared by the tests of one file: started before
 * them, closed after them, and after each test every services instance stopped (no worker of one
 * test may take another test's items) and the server reset. Read the fields inside tests.
 */
export function useVocabEnvWithLlm(): { readonly env: VocabTestEnv; readonly server: FakeLlmServer } {
  const shared = {} as { env: VocabTestEnv; server: FakeLlmServer };
  beforeAll(async () => {
    [shared.env, shared.server] = await Promise.all([setupVocabEnv(), FakeLlmServer.start()]);
  });
  afterAll(async () => {
    await shared.env?.close();
    await shared.server?.close();
  });
  afterEach(async () => {
    await shared.env.stopServices();
    shared.server.reset();
  });
  return shared;
}
