import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppError } from '../../src/core/errors.ts';
import { currentFairnessKey, runInFairnessScope, setFairnessKey } from '../../src/core/fairness.ts';
import { createLogger } from '../../src/core/log.ts';
import { openDatabase, translateDbError, type Database } from '../../src/db/client.ts';
import { gql, startTestApp, type TestApp } from '../support/app.ts';
import { createMigratedDatabase, databaseMode, type TestDatabase } from '../support/database.ts';
import { createTenantWithKeys } from '../support/tenants.ts';

const codeOf = (e: unknown) => (e instanceof AppError ? e.code : String(e));

/** Runs `fn` as work done for `tenant`, as a request of that tenant does. */
const as = <T>(tenant: string, fn: () => Promise<T>) =>
  runInFairnessScope(() => {
    setFairnessKey(tenant);
    return fn();
  });

// One connection, as on the embedded database (on PostgreSQL the pool is cut to one), and a
// short wait for it. A tenant whose requests queue up for the connection must not make another
// tenant's requests wait behind its whole queue.
describe(`one database connection shared between tenants (${databaseMode} database)`, () => {
  let testDb: TestDatabase;
  let db: Database;

  beforeAll(async () => {
    testDb = await createMigratedDatabase();
    db = openDatabase(testDb.url, 1, createLogger('silent'), {
      timeouts: { connectMs: 1_500, statementMs: 5_000, idleInTransactionMs: 5_000 },
      beforeConnect: () => testDb.whenIdle(),
    });
    await db.pool.query('SELECT 1');
  });
  afterAll(async () => {
    await db?.close();
    await testDb?.whenIdle();
    await testDb?.drop();
  });

  it("serves another tenant's statements between a flooding tenant's, and bounds every wait", async () => {
    // 40 statements of 100 ms: four seconds of work queued for the only connection, far beyond
    // the wait any caller accepts
    const flood = Array.from({ length: 40 }, () =>
      as('flooder', () => db.pool.query('SELECT pg_sleep(0.1)').then(
        () => 'OK',
        (e: unknown) => translateDbError(e),
      )).catch(codeOf),
    );
    const served: string[] = [];
    for (let i = 0; i < 5; i++) {
      served.push(await as('other', () => db.pool.query('SELECT 1').then(() => 'OK', (e: unknown) => translateDbError(e))).catch(codeOf));
    }
    const flooded = await Promise.all(flood);
    expect(served).toEqual(Array(5).fill('OK'));
    // the flooder's own excess was told, after a bounded wait, that the database is busy
    expect(flooded.filter((c) => c !== 'OK' && c !== 'DATABASE_UNAVAILABLE')).toEqual([]);
    expect(flooded).toContain('DATABASE_UNAVAILABLE');
    expect(flooded).toContain('OK');
  }, 60_000);
});

describe(`the tenant of a request at the database's door (${databaseMode} database)`, () => {
  let t: TestApp;

  beforeAll(async () => {
    // keys stay verified: the lookup of a key not yet verified is made before its tenant is known;
    // no description worker, whose polls (work of no tenant) would ask for connections meanwhile
    t = await startTestApp({ OMNITAG_AUTH_CACHE_MS: '600000', OMNITAG_DESCRIPTION_WORKER: 'false', OMNITAG_LIBRARY_WORKER: 'false' });
  });
  afterAll(() => t?.stop());

  it('names the tenant whose request asks for a connection', async () => {
    const tenant = await createTenantWithKeys(t.url, 'Named');
    expect((await gql(t.url, '{ viewer { role } }', {}, tenant.adminKey)).errors).toBeUndefined();
    const pool = t.app.db.pool;
    const asked: (string | undefined)[] = [];
    const connect = pool.connect.bind(pool) as (...a: unknown[]) => unknown;
    pool.connect = ((...args: unknown[]) => {
      asked.push(currentFairnessKey());
      return connect(...args);
    }) as typeof pool.connect;
    try {
      const r = await gql(t.url, 'mutation { createVocabulary(input: { name: "mine" }) { id tags(first: 5) { totalCount } } }', {}, tenant.adminKey);
      expect(r.errors).toBeUndefined();
    } finally {
      pool.connect = connect as typeof pool.connect;
    }
    expect(asked.length).toBeGreaterThan(0);
    expect(asked.every((k) => k === tenant.id)).toBe(true);
  });
});
