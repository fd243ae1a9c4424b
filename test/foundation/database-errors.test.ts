import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { App } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/core/log.ts';
import { AppError } from '../../src/core/errors.ts';
import { isDatabaseUnavailable, openDatabase, READ_GRACE_MS, translateDbError, type Database } from '../../src/db/client.ts';
import { PLATFORM_KEY } from '../support/app.ts';
import { createMigratedDatabase, databaseMode, type TestDatabase } from '../support/database.ts';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.ts';

const silent = createLogger('silent');
/** Small timeouts keep these tests quick; the defaults are exercised by test/faults. */
const timeouts = { connectMs: 1_000, statementMs: 1_000, idleInTransactionMs: 2_000 };
/** The most one service call may take while the database does not answer (several waits, one after another), with a wide margin. */
const CALL_BOUND_MS = 3 * timeouts.connectMs + 2 * (timeouts.statementMs + READ_GRACE_MS) + 10_000;

const codeOf = (e: unknown) => (e instanceof AppError ? e.code : `${(e as Error)?.name}: ${(e as Error)?.message}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

describe('which errors mean the database is unavailable', () => {
  it('recognises them however the driver, the adapter or Prisma wrap them, and nothing else', () => {
    const unavailable: unknown[] = [
      Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED', syscall: 'connect', errno: -111 }),
      new Error('Connection terminated unexpectedly'),
      new Error('Connection terminated due to connection timeout'),
      new Error('Query read timeout'),
      new Error('timeout exceeded when trying to connect'),
      new Error('Client has encountered a connection error and is not queryable'),
      Object.assign(new Error('canceling statement due to statement timeout'), { code: '57014', severity: 'ERROR' }),
      Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01', severity: 'FATAL' }),
      Object.assign(new Error('sorry, too many clients already'), { code: '53300', severity: 'FATAL' }),
      Object.assign(new Error('could not obtain lock'), { code: '55P03', severity: 'ERROR' }),
      Object.assign(new Error("Can't reach database server"), { code: 'P1001' }),
      Object.assign(new Error('Server has closed the connection.'), { code: 'P1017' }),
      Object.assign(new Error('Transaction API error: Unable to start a transaction in the given time.'), { code: 'P2028' }),
      // a raw query's failure, as Prisma reports it: the state is inside the adapter's error
      Object.assign(new Error('Raw query failed. Code: `57014`.'), { code: 'P2010', meta: { driverAdapterError: { cause: { kind: 'postgres', originalCode: '57014' } } } }),
      Object.assign(new Error('wrapped'), { cause: { kind: 'ConnectionClosed' } }),
    ];
    const other: unknown[] = [
      Object.assign(new Error('duplicate key value violates unique constraint'), { code: '23505', severity: 'ERROR' }),
      Object.assign(new Error('syntax error at or near "SELEC"'), { code: '42601', severity: 'ERROR' }),
      Object.assign(new Error('Unique constraint failed'), { code: 'P2002' }),
      new Error('something else entirely'),
      undefined,
      'a string',
    ];
    expect(unavailable.filter((e) => !isDatabaseUnavailable(e))).toEqual([]);
    expect(other.filter((e) => isDatabaseUnavailable(e))).toEqual([]);
    for (const e of unavailable) expect(() => translateDbError(e)).toThrow(expect.objectContaining({ code: 'DATABASE_UNAVAILABLE' }));
    expect(() => translateDbError(new AppError('NOT_FOUND', 'x'))).toThrow(expect.objectContaining({ code: 'NOT_FOUND' }));
  });

  it('answers a refused connection within the connect timeout', async () => {
    const db = openDatabase(`postgresql://postgres@127.0.0.1:${await closedPort()}/none`, 2, silent, { timeouts });
    try {
      await expect(db.pool.query('SELECT 1').catch(translateDbError)).rejects.toMatchObject({ code: 'DATABASE_UNAVAILABLE' });
      await expect(db.prisma.tenant.count().catch(translateDbError)).rejects.toMatchObject({ code: 'DATABASE_UNAVAILABLE' });
    } finally {
      await db.close();
    }
  });
});

describe(`the pg pool when connections fail (${databaseMode} database)`, () => {
  let testDb: TestDatabase;
  let proxy: TcpProxy;
  let db: Database;

  beforeAll(async () => {
    testDb = await createMigratedDatabase();
    const target = new URL(testDb.url);
    proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port) });
    db = openDatabase(proxy.urlFor(testDb.url), 1, silent, { timeouts });
  });
  afterAll(async () => {
    await db?.close();
    await proxy?.close();
    await testDb?.whenIdle();
    await testDb?.drop();
  });

  /** Retries until the database answers through the pool again (a reset connection may be in the way once). */
  const answers = async () => {
    for (let i = 0; i < 50; i++) {
      try {
        await db.pool.query('SELECT 1');
        return true;
      } catch {
        await sleep(100);
      }
    }
    return false;
  };

  it('survives the late error of an idle connection and of one held between queries', async () => {
    expect(await answers()).toBe(true);
    // idle in the pool: the server resets it while the path is down
    await proxy.setMode('blackhole');
    await proxy.heal({ resetHeld: true });
    await sleep(200);
    expect(await answers()).toBe(true);

    // checked out, no query running: nobody but the connection's own listener hears the error
    const client = await db.pool.connect();
    await proxy.setMode('reset');
    await sleep(200);
    await proxy.heal();
    client.release();
    expect(await answers()).toBe(true);
  });

  it('gives up a silent connection after the statement timeout, and works again once the path heals', async () => {
    expect(await answers()).toBe(true);
    await proxy.setMode('blackhole');
    const started = Date.now();
    const silent = await db.pool.query('SELECT 1').catch((e: unknown) => e);
    const queued = await db.pool.query('SELECT 2').catch((e: unknown) => e);
    expect(isDatabaseUnavailable(silent)).toBe(true);
    expect(isDatabaseUnavailable(queued)).toBe(true);
    expect(Date.now() - started).toBeLessThan(CALL_BOUND_MS);
    await proxy.heal();
    expect(await answers()).toBe(true);
  });

  it('closes in bounded time while the database is silent', async () => {
    const other = openDatabase(proxy.urlFor(testDb.url), 1, silent, { timeouts });
    await proxy.setMode('reset'); // the embedded server takes one connection: free it for this client
    await proxy.heal();
    for (let i = 0; i < 50; i++) {
      if (await other.pool.query('SELECT 1').then(() => true, () => false)) break;
      await sleep(100);
    }
    await proxy.setMode('blackhole');
    try {
      const started = Date.now();
      await other.close();
      expect(Date.now() - started).toBeLessThan(CALL_BOUND_MS);
    } finally {
      await proxy.heal();
    }
    expect(await answers()).toBe(true);
  });

  it('cuts a statement that runs too long and keeps serving', async () => {
    expect(await answers()).toBe(true);
    const slow = await db.pool.query('SELECT pg_sleep(3)').catch((e: unknown) => e);
    expect(isDatabaseUnavailable(slow)).toBe(true);
    expect(await answers()).toBe(true);
  });
});

describe(`every database path of the application when the database is unavailable (${databaseMode} database)`, () => {
  let testDb: TestDatabase;
  let proxy: TcpProxy;
  let app: App;
  let dataDir: string;
  const f = {} as { tenantId: string; key: string; keyId: string; vocabularyId: string; tagId: string; jobId: string; image: Uint8Array };

  beforeAll(async () => {
    testDb = await createMigratedDatabase();
    const target = new URL(testDb.url);
    proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port) });
    dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'omnitag-dberrors-'));
    const config = loadConfig({
      NODE_ENV: 'test',
      PORT: '0',
      LOG_LEVEL: 'silent',
      DATABASE_URL: proxy.urlFor(testDb.url),
      DATABASE_POOL_SIZE: databaseMode === 'embedded' ? '1' : '3',
      DATABASE_CONNECT_TIMEOUT_MS: String(timeouts.connectMs),
      DATABASE_STATEMENT_TIMEOUT_MS: String(timeouts.statementMs),
      DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS: String(timeouts.idleInTransactionMs),
      OMNITAG_MIGRATE_ON_START: 'false',
      OMNITAG_DATA_DIR: dataDir,
      OMNITAG_PLATFORM_ADMIN_KEY: PLATFORM_KEY,
      OMNITAG_AUTH_CACHE_MS: '0',
      OMNITAG_DESCRIPTION_WORKER: 'false',
      OMNITAG_LIBRARY_WORKER: 'false',
    });
    app = new App(config, silent);
    await app.start();
    const s = app.services;
    f.tenantId = (await s.tenants.create({ name: 'Unavailable' })).id;
    const key = await s.apiKeys.create(f.tenantId, { name: 'k', role: 'ADMIN' });
    f.key = key.secret;
    f.keyId = key.apiKey.id;
    f.vocabularyId = (await s.vocab.vocabularies.create(f.tenantId, { name: 'v' })).id;
    const added = await s.vocab.tags.add(f.tenantId, f.vocabularyId, [{ name: 'cloud' }, { name: 'tree' }]);
    f.tagId = added.results[0]!.tag!.id;
    f.jobId = (await s.vocab.jobs.create(f.tenantId, f.vocabularyId, { generator: 'template' })).job.id;
    f.image = await sharp({ create: { width: 32, height: 32, channels: 3, background: '#567' } }).png().toBuffer();
    await s.tagging.tagImage(f.tenantId, f.vocabularyId, { base64: Buffer.from(f.image).toString('base64') });
  });
  afterAll(async () => {
    await proxy?.heal();
    await app?.stop();
    await proxy?.close();
    await testDb?.whenIdle();
    await testDb?.drop();
    if (dataDir) await fs.rm(dataDir, { recursive: true, force: true });
  });

  /** One call per service method that reaches the database; a resolved batch answer is judged by its items. */
  const calls = (): Record<string, () => Promise<unknown>> => {
    const s = app.services;
    const { tenantId: t, vocabularyId: v, tagId, jobId, keyId } = f;
    const unique = () => randomBytes(4).toString('hex');
    return {
      'auth.authenticate': () => s.auth.authenticate(`Bearer ${f.key}`),
      'tenants.create': () => s.tenants.create({ name: `t ${unique()}` }),
      'tenants.list': () => s.tenants.list({ first: 5 }),
      'tenants.get': () => s.tenants.get(t),
      'apiKeys.create': () => s.apiKeys.create(t, { name: 'k2', role: 'CLIENT' }),
      'apiKeys.list': () => s.apiKeys.list(t),
      'apiKeys.getPrefix': () => s.apiKeys.getPrefix(t, keyId),
      'vocabularies.create': () => s.vocab.vocabularies.create(t, { name: `v ${unique()}` }),
      'vocabularies.get': () => s.vocab.vocabularies.get(t, v),
      'vocabularies.list': () => s.vocab.vocabularies.list(t, { first: 5 }),
      'vocabularies.rename': () => s.vocab.vocabularies.rename(t, v, `v ${unique()}`),
      'vocabularies.stats': () => s.vocab.vocabularies.stats(t, v),
      'tags.add': () => s.vocab.tags.add(t, v, [{ name: `tag ${unique()}` }]),
      'tags.list': () => s.vocab.tags.list(t, v, { first: 5 }),
      'tags.getMany': () => s.vocab.tags.getMany(t, [tagId]),
      'tags.update': () => s.vocab.tags.update(t, tagId, { threshold: 0.4 }),
      'tags.remove': () => s.vocab.tags.remove(t, [tagId]),
      'descriptions.listForTags': () => s.vocab.descriptions.listForTags(t, [tagId]),
      'descriptions.replace': () => s.vocab.descriptions.replace(t, tagId, ['a hand-written description']),
      'jobs.create': () => s.vocab.jobs.create(t, v, { generator: 'template' }),
      'jobs.get': () => s.vocab.jobs.get(t, jobId),
      'jobs.cancel': () => s.vocab.jobs.cancel(t, jobId),
      // the embedding cache's own table lookup: a text no cache has seen
      'embeddings.embed': () => s.vocab.embeddings.embed([`a text never embedded ${unique()}`]),
      'labelBanks.forVocabulary': () => s.vocab.labelBanks.forVocabulary(t, v),
      'tagging.tagImage': () => s.tagging.tagImage(t, v, { base64: Buffer.from(f.image).toString('base64') }),
      'tagging.tagImages': () => s.tagging.tagImages(t, v, [{ base64: Buffer.from(f.image).toString('base64') }]),
    };
  };

  /** Runs every call at once; each one's code ('OK' when it resolved without item errors) and time. */
  const runAll = async () =>
    Promise.all(
      Object.entries(calls()).map(async ([name, call]) => {
        const started = Date.now();
        let code: string;
        try {
          const result = (await call()) as { results?: { ok: boolean; error?: { code: string } }[] } | { error?: { code: string } | null }[] | undefined;
          const items = Array.isArray(result) ? result : (result?.results ?? []);
          code = (items as { error?: { code: string } | null }[]).find((i) => i.error)?.error?.code ?? 'OK';
        } catch (e) {
          code = codeOf(e);
        }
        return { name, code, ms: Date.now() - started };
      }),
    );

  for (const mode of ['refuse', 'reset', 'blackhole'] as const) {
    it(`answers DATABASE_UNAVAILABLE from every call, in bounded time, while the database ${mode === 'refuse' ? 'refuses connections' : mode === 'reset' ? 'resets connections' : 'drops every packet'}`, async () => {
      // a label bank compiled before the outage would spare the tagging calls their database
      // work; a new revision makes them ask
      await app.services.vocab.tags.add(f.tenantId, f.vocabularyId, [{ name: `fresh ${mode}` }]);
      await proxy.setMode(mode);
      let results;
      try {
        results = await runAll();
      } finally {
        await proxy.heal();
      }
      expect(results.filter((r) => r.code !== 'DATABASE_UNAVAILABLE').map((r) => `${r.name}: ${r.code}`)).toEqual([]);
      expect(results.filter((r) => r.ms > CALL_BOUND_MS).map((r) => `${r.name}: ${r.ms} ms`)).toEqual([]);

      // and it recovers by itself: the same calls answer again (a connection of the outage may fail one first)
      let again = await runAll();
      for (let i = 0; i < 20 && again.some((r) => r.code === 'DATABASE_UNAVAILABLE'); i++) {
        await sleep(250);
        again = await runAll();
      }
      expect(again.filter((r) => r.code === 'DATABASE_UNAVAILABLE').map((r) => r.name)).toEqual([]);
      expect((await app.services.health.check()).database).toBe(true);
    }, 120_000);
  }
});
