import fs from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import { bindMigrationAwareSqlAdapterFactory } from '@prisma/driver-adapter-utils';
import * as engineGlue from '@prisma/schema-engine-wasm/schema_engine_bg';
import type { MigrationList, SchemaEngine } from '@prisma/schema-engine-wasm';

/**
 * Migrations through Prisma's WebAssembly schema engine over the pg driver adapter: the
 * native engine binary cannot be downloaded everywhere, and the wasm one applies the standard
 * `prisma/migrations` folder exactly as `prisma migrate deploy` does (same `_prisma_migrations`
 * bookkeeping), on the embedded database and on a real PostgreSQL alike.
 */

const repoRoot = path.resolve(import.meta.dirname, '..', '..');
export const SCHEMA_PATH = path.join(repoRoot, 'prisma', 'schema.prisma');
export const MIGRATIONS_DIR = path.join(repoRoot, 'prisma', 'migrations');
const NO_FILTER = { externalTables: [], externalEnums: [] };
const LOCK_FILE = '# Written by `npm run db:migration:create`; do not edit.\nprovider = "postgresql"\n';

interface WasmApi {
  instantiate(bytes: Uint8Array, imports: object): Promise<{ instance: { exports: Record<string, unknown> } }>;
}

let wasmReady: Promise<void> | undefined;
export let lastPanic = '';
function loadWasm(): Promise<void> {
  wasmReady ??= (async () => {
    const require = createRequire(import.meta.url);
    const dir = path.dirname(require.resolve('@prisma/schema-engine-wasm/schema_engine_bg'));
    const bytes = await fs.readFile(path.join(dir, 'schema_engine_bg.wasm'));
    // Node has WebAssembly built in; TypeScript's ES lib does not declare it.
    const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;
    const { instance } = await wasm.instantiate(bytes, { './schema_engine_bg.js': engineGlue });
    // The engine reports Rust panics through this global.
    const g = globalThis as { PRISMA_WASM_PANIC_REGISTRY?: { set_message(m: string): void } };
    g.PRISMA_WASM_PANIC_REGISTRY ??= { set_message: (m: string) => { lastPanic = m; } };
    engineGlue.__wbg_set_wasm(instance.exports);
    (instance.exports as { __wbindgen_start(): void }).__wbindgen_start();
  })();
  return wasmReady;
}

const PG_CHAR_OID = 18;
const PG_TEXT_OID = 25;

/**
 * The engine's schema introspection reads catalog columns of PostgreSQL's one-byte `"char"`
 * type, which the pg driver adapter does not map; they are plain text for our purposes.
 */
class CatalogFriendlyClient extends pg.Client {
  override query(...args: unknown[]): never {
    const fix = (r: pg.QueryResult | undefined) => {
      for (const f of r?.fields ?? []) if (f.dataTypeID === PG_CHAR_OID) f.dataTypeID = PG_TEXT_OID;
      return r;
    };
    const last = args.length - 1;
    const callback = args[last];
    if (typeof callback === 'function') {
      args[last] = (err: unknown, r: pg.QueryResult) => callback(err, fix(r));
    }
    const result = (super.query as (...a: unknown[]) => unknown)(...args);
    return (result instanceof Promise ? result.then(fix) : result) as never;
  }
}

/**
 * Migrations are bounded too, more loosely than requests (a migration may rewrite a large table):
 * a database that stops answering during start-up fails it instead of hanging it.
 */
const MIGRATION_CONNECT_TIMEOUT_MS = 10_000;
const MIGRATION_STATEMENT_TIMEOUT_MS = 10 * 60_000;

const enginePool = (connectionString: string) => {
  const pool = new pg.Pool({
    connectionString,
    max: 1,
    Client: CatalogFriendlyClient,
    connectionTimeoutMillis: MIGRATION_CONNECT_TIMEOUT_MS,
    query_timeout: MIGRATION_STATEMENT_TIMEOUT_MS,
    keepAlive: true,
  });
  // A late error on an idle connection must not end the process; the next query reports it.
  pool.on('error', () => {});
  return pool;
};

interface EngineOptions {
  /** Where throwaway databases come from when the engine needs one (diffs against migrations). */
  shadowUrl?: string;
}

async function withEngine<T>(url: string, opts: EngineOptions, fn: (engine: SchemaEngine) => Promise<T>): Promise<T> {
  await loadWasm();
  // Pools are ours to close: the engine does not dispose its adapters, and an embedded server
  // that still holds a connection refuses the next one.
  const pools = [enginePool(url), ...(opts.shadowUrl ? [enginePool(opts.shadowUrl)] : [])];
  const [main, shadow = main] = pools.map((p) => new PrismaPg(p)) as [PrismaPg, PrismaPg?];
  const adapter = bindMigrationAwareSqlAdapterFactory({
    provider: main.provider,
    adapterName: main.adapterName,
    connect: () => main.connect(),
    connectToShadowDb: () => shadow.connect(),
  });
  const schema = await fs.readFile(SCHEMA_PATH, 'utf8');
  const log = () => {};
  const engine = (await engineGlue.SchemaEngine.new({ datamodels: [[SCHEMA_PATH, schema]] }, log, adapter)) as SchemaEngine;
  try {
    return await fn(engine);
  } finally {
    engine.free();
    await Promise.all(pools.map((p) => p.end()));
  }
}

export async function readMigrations(dir = MIGRATIONS_DIR): Promise<MigrationList> {
  const entries = await fs.readdir(dir, { withFileTypes: true }).catch(() => []);
  const names = entries.filter((e) => e.isDirectory()).map((e) => e.name).sort();
  const lockPath = path.join(dir, 'migration_lock.toml');
  return {
    baseDir: dir,
    // A folder with no migrations yet has no lock file; the provider is fixed, so supply it.
    lockfile: { path: 'migration_lock.toml', content: await fs.readFile(lockPath, 'utf8').catch(() => LOCK_FILE) },
    shadowDbInitScript: '',
    migrationDirectories: await Promise.all(
      names.map(async (name) => ({
        path: name,
        migrationFile: {
          path: 'migration.sql',
          content: await fs
            .readFile(path.join(dir, name, 'migration.sql'), 'utf8')
            .then((ok) => ({ tag: 'ok' as const, value: ok }))
            .catch((e: Error) => ({ tag: 'error' as const, value: e.message })),
        },
      })),
    ),
  };
}

/** Applies pending migrations; returns the names applied now (empty when up to date). */
export async function applyMigrations(url: string): Promise<string[]> {
  const migrationsList = await readMigrations();
  return withEngine(url, {}, async (engine) => {
    const out = await engine.applyMigrations({ migrationsList, filters: NO_FILTER });
    return out.appliedMigrationNames;
  });
}

/** Migrations in the folder that the database has not applied (readiness and start-up check). */
export async function pendingMigrations(db: { prisma: { $queryRawUnsafe<T>(sql: string): Promise<T> } }): Promise<string[]> {
  const { migrationDirectories } = await readMigrations();
  const rows = await db.prisma
    .$queryRawUnsafe<{ migration_name: string }[]>(
      'SELECT migration_name FROM _prisma_migrations WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL',
    )
    .catch(() => []);
  const applied = new Set(rows.map((r) => r.migration_name));
  return migrationDirectories.map((d) => d.path).filter((n) => !applied.has(n));
}

/**
 * Runs `fn` with a scratch database created on the server of `serverUrl`, dropped afterwards.
 * Diffs need a real PostgreSQL: the engine's schema description of PGlite aborts.
 */
async function withScratchDatabase<T>(serverUrl: string, fn: (url: string) => Promise<T>): Promise<T> {
  const name = `omnitag_scratch_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
    const url = new URL(serverUrl);
    url.pathname = `/${name}`;
    try {
      return await fn(url.toString());
    } finally {
      await dropWhenClosed(admin, name);
    }
  } finally {
    await admin.end();
  }
}

/**
 * Drops a scratch database once the connections we closed are really gone. Forcing the drop at
 * once would terminate a connection still saying goodbye, and its client would report the
 * server's "terminating connection" as an error nobody is left to handle.
 */
async function dropWhenClosed(admin: pg.Client, name: string): Promise<void> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const { rows } = await admin.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1', [name]);
    if (rows[0]?.n === 0) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
}

/**
 * SQL that takes a database built from the migrations folder to the schema in
 * `prisma/schema.prisma`; empty when they agree. The migrations are replayed into a scratch
 * database on the PostgreSQL server at `serverUrl`.
 */
export async function diffSchemaAgainstMigrations(serverUrl: string): Promise<string> {
  const migrationsList = await readMigrations();
  const schema = await fs.readFile(SCHEMA_PATH, 'utf8');
  return withScratchDatabase(serverUrl, (url) =>
    withEngine(url, { shadowUrl: url }, async (engine) => {
      const out = await engine.diff({
        from: { tag: 'migrations', ...migrationsList },
        to: { tag: 'schemaDatamodel', files: [{ path: SCHEMA_PATH, content: schema }] },
        script: true,
        exitCode: null,
        filters: NO_FILTER,
      });
      const sql = out.stdout ?? '';
      return /^\s*(--.*\n?)*\s*$/.test(sql) ? '' : sql;
    }),
  );
}

/** Writes a new migration folder for the pending schema changes; returns its path, or null when none. */
export async function createMigration(name: string, serverUrl: string): Promise<string | null> {
  const sql = await diffSchemaAgainstMigrations(serverUrl);
  if (!sql) return null;
  const slug = name.toLowerCase().replace(/[^a-z0-9]+/g, '_').replace(/^_|_$/g, '') || 'migration';
  const stamp = new Date().toISOString().replace(/[-:T]/g, '').slice(0, 14);
  const dir = path.join(MIGRATIONS_DIR, `${stamp}_${slug}`);
  await fs.mkdir(dir, { recursive: true });
  await fs.writeFile(path.join(dir, 'migration.sql'), sql);
  const lock = path.join(MIGRATIONS_DIR, 'migration_lock.toml');
  await fs.writeFile(lock, LOCK_FILE, { flag: 'wx' }).catch(() => {});
  return dir;
}
