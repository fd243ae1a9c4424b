import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { startEmbeddedPostgres } from '../src/db/embedded.ts';
import { applyMigrations } from '../src/db/migrate.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Embedded-database data directories to copy: a fresh one, and one with every migration applied. */
    pgTemplates: { empty: string; migrated: string } | null;
  }
}

/**
 * Creating an embedded PostgreSQL data directory (initdb in WebAssembly) takes seconds; copying
 * one takes a fraction of that. So the run makes them once and every test copies its own.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  if (process.env.OMNITAG_TEST_PG_SERVER) {
    project.provide('pgTemplates', null);
    return async () => {};
  }
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'omnitag-pg-templates-'));
  const empty = path.join(root, 'empty');
  const migrated = path.join(root, 'migrated');
  const pg = await startEmbeddedPostgres(empty);
  await pg.stop();
  await fs.cp(empty, migrated, { recursive: true });
  const m = await startEmbeddedPostgres(migrated);
  await applyMigrations(m.url);
  await m.stop();
  project.provide('pgTemplates', { empty, migrated });
  return () => fs.rm(root, { recursive: true, force: true });
}
