import path from 'node:path';
import type { Config } from '../config.ts';
import { startEmbeddedPostgres } from './embedded.ts';

/** Where the database is: the configured server, or the embedded one started here. */
export interface DatabaseServer {
  readonly url: string;
  readonly embedded: boolean;
  /** Connections the pool may open (the embedded server takes one). */
  readonly maxConnections: number;
  /** Resolves when the server can take a new connection (see EmbeddedPostgres.whenIdle). */
  whenIdle(): Promise<void>;
  stop(): Promise<void>;
}

export async function openDatabaseServer(config: Config): Promise<DatabaseServer> {
  if (config.database.url) {
    return { url: config.database.url, embedded: false, maxConnections: config.database.poolSize, whenIdle: async () => {}, stop: async () => {} };
  }
  const pg = await startEmbeddedPostgres(path.join(config.dataDir, 'pg'));
  return { url: pg.url, embedded: true, maxConnections: 1, whenIdle: () => pg.whenIdle(), stop: () => pg.stop() };
}
