import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyMigrations, diffSchemaAgainstMigrations, readMigrations } from '../../src/db/migrate.ts';
import { openDatabase } from '../../src/db/client.ts';
import { pendingMigrations } from '../../src/db/migrate.ts';
import { createLogger } from '../../src/core/log.ts';
import { createEmptyDatabase, databaseMode, pgServerUrl, type TestDatabase } from '../support/database.ts';

describe(`migrations (${databaseMode} database)`, () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createEmptyDatabase();
  });
  afterAll(() => db?.drop());

  it('apply on an empty database, then are idempotent', async () => {
    const { migrationDirectories } = await readMigrations();
    expect(migrationDirectories.length).toBeGreaterThan(0);
    const first = await applyMigrations(db.url);
    expect(first).toEqual(migrationDirectories.map((m) => m.path));
    expect(await applyMigrations(db.url)).toEqual([]);
    await db.whenIdle();
  });

  it('record their history as prisma migrate does and create every table', async () => {
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      const history = await client.query('SELECT migration_name, finished_at FROM _prisma_migrations');
      expect(history.rows.length).toBeGreaterThan(0);
      expect(history.rows.every((r) => r.finished_at)).toBe(true);
      const tables = await client.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name",
      );
      const names = tables.rows.map((r) => r.table_name);
      for (const t of ['tenants', 'api_keys', 'vocabularies', 'tags', 'tag_descriptions', 'text_embeddings']) {
        expect(names).toContain(t);
      }
    } finally {
      await client.end();
      await db.whenIdle();
    }
  });

  it('leave nothing pending for the readiness check', async () => {
    const database = openDatabase(db.url, 1, createLogger('silent'));
    try {
      expect(await pendingMigrations(database)).toEqual([]);
    } finally {
      await database.close();
    }
  });

  it.skipIf(!pgServerUrl)('agree with prisma/schema.prisma (needs a PostgreSQL server)', async () => {
    expect(await diffSchemaAgainstMigrations(pgServerUrl!)).toBe('');
  });
});
