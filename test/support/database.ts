import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { inject } from 'vitest';
import { startEmbeddedPostgres } from '../../src/db/embedded.ts';
import { applyMigrations } from '../../src/db/migrate.ts';

/**
 * Where the tests' databases live. `.ci/run` runs the suite twice: with
 * OMNITAG_TEST_PG_SERVER set (a real PostgreSQL server; each caller gets a fresh database,
 * dropped afterwards, so repeated and parallel runs never collide) and without it (embedded
 * PGlite, the zero-config default).
 */
export const pgServerUrl = process.env.OMNITAG_TEST_PG_SERVER || undefined;
export const databaseMode = pgServerUrl ? 'postgresql' : 'embedded';

export interface TestDatabase {
  readonly url: string;
  /** Resolves when a new connection will be accepted (the embedded server takes one at a time). */
  whenIdle(): Promise<void>;
  drop(): Promise<void>;
}

/** A new, empty database on the test PostgreSQL server (requires OMNITAG_TEST_PG_SERVER). */
export async function createServerDatabase(): Promise<TestDatabase> {
  if (!pgServerUrl) throw new Error('OMNITAG_TEST_PG_SERVER is not set');
  const name = `omnitag_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: pgServerUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(pgServerUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    whenIdle: async () => {},
    async drop() {
      const c = new pg.Client({ connectionString: pgServerUrl });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

/**
 * Copies the run's embedded data-directory template (see test/global-setup.ts) to `target`,
 * or returns false when there is none (a real server is in use).
 */
export async function copyEmbeddedTemplate(kind: 'empty' | 'migrated', target: string): Promise<boolean> {
  const templates = inject('pgTemplates');
  if (!templates) return false;
  await fs.cp(templates[kind], target, { recursive: true });
  return true;
}

async function embeddedFromTemplate(kind: 'empty' | 'migrated'): Promise<TestDatabase> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'omnitag-testdb-'));
  await copyEmbeddedTemplate(kind, dir);
  const embedded = await startEmbeddedPostgres(dir);
  return {
    url: embedded.url,
    whenIdle: () => embedded.whenIdle(),
    async drop() {
      await embedded.stop();
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}

/** An empty database of the current mode: a fresh server database, or an embedded one. */
export async function createEmptyDatabase(): Promise<TestDatabase> {
  return pgServerUrl ? createServerDatabase() : embeddedFromTemplate('empty');
}

/** An empty database with every migration applied. */
export async function createMigratedDatabase(): Promise<TestDatabase> {
  if (!pgServerUrl) return embeddedFromTemplate('migrated');
  const db = await createServerDatabase();
  await applyMigrations(db.url);
  return db;
}
