import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { App } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import { createLogger, type Logger } from '../../src/core/log.ts';
import { copyEmbeddedTemplate, createServerDatabase, pgServerUrl, type TestDatabase } from './database.ts';
import { NO_DEFAULT_LIMITS } from './limits.ts';

export const PLATFORM_KEY = 'test-platform-admin-key-0123456789';

export interface TestApp {
  readonly app: App;
  readonly url: string;
  readonly dataDir: string;
  stop(): Promise<void>;
}

/**
 * The real server on a loopback port 0, with its own database: a fresh one on the test
 * PostgreSQL server, or the embedded one in a temporary data directory. `log`: a logger of the
 * test's own (to read what the app logs); default one at TEST_LOG_LEVEL, silent unless set.
 */
export async function startTestApp(env: Record<string, string> = {}, { log }: { log?: Logger } = {}): Promise<TestApp> {
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'omnitag-test-'));
  const db: TestDatabase | undefined = pgServerUrl ? await createServerDatabase() : undefined;
  // The embedded database starts from the run's migrated template (the app's own data layout).
  if (!db) await copyEmbeddedTemplate('migrated', path.join(dataDir, 'pg'));
  const config = loadConfig({
    NODE_ENV: 'test',
    HOST: '127.0.0.1',
    PORT: '0',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    OMNITAG_DATA_DIR: dataDir,
    OMNITAG_PLATFORM_ADMIN_KEY: PLATFORM_KEY,
    OMNITAG_SHUTDOWN_TIMEOUT_MS: '2000',
    ...NO_DEFAULT_LIMITS,
    ...(db ? { DATABASE_URL: db.url } : {}),
    ...env,
  });
  const app = new App(config, log ?? createLogger(config.logLevel));
  await app.start();
  return {
    app,
    url: app.url,
    dataDir,
    async stop() {
      await app.stop();
      await db?.drop();
      await fs.rm(dataDir, { recursive: true, force: true });
    },
  };
}

export interface GraphQLResponse<T = Record<string, unknown>> {
  status: number;
  data?: T | null;
  errors?: { message: string; extensions?: { code?: string; [k: string]: unknown }; path?: (string | number)[] }[];
  extensions?: { warnings?: { code: string; message: string }[]; [k: string]: unknown };
}

/** POSTs one GraphQL operation over real HTTP. */
export async function gql<T = Record<string, any>>(
  baseUrl: string,
  query: string,
  variables?: Record<string, unknown>,
  key?: string,
  signal?: AbortSignal,
): Promise<GraphQLResponse<T>> {
  const res = await fetch(`${baseUrl}/graphql`, {
    method: 'POST',
    signal,
    headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await res.json()) as Omit<GraphQLResponse<T>, 'status'>;
  return { status: res.status, ...body };
}

export const errorCodes = (r: GraphQLResponse) => (r.errors ?? []).map((e) => e.extensions?.code);
