import fs from 'node:fs/promises';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';

/**
 * The zero-config database: PGlite (PostgreSQL compiled to WebAssembly) in a data directory,
 * served on a loopback port so the same pg driver adapter and migrations serve both modes.
 * PGlite is a single session, so the socket server takes one connection and the pool using
 * it must be limited to one connection.
 */
export interface EmbeddedPostgres {
  readonly url: string;
  readonly dataDir: string | undefined;
  /**
   * Resolves once no client is connected. A closed client's socket is released by the server a
   * moment later; the next client to connect before then would be turned away.
   */
  whenIdle(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startEmbeddedPostgres(dataDir: string | undefined): Promise<EmbeddedPostgres> {
  if (dataDir) await fs.mkdir(dataDir, { recursive: true });
  // `memory://` keeps nothing on disk: throwaway shadow databases for migration diffs.
  const db = await PGlite.create(dataDir ? path.resolve(dataDir) : 'memory://');
  const server = new PGLiteSocketServer({ db, host: '127.0.0.1', port: 0, maxConnections: 1 });
  await server.start();
  const address = (server as unknown as { server: import('node:net').Server }).server.address();
  if (!address || typeof address === 'string') throw new Error('embedded PostgreSQL did not get a TCP port');
  let stopped = false;
  return {
    url: `postgresql://postgres:postgres@127.0.0.1:${address.port}/postgres?sslmode=disable`,
    dataDir,
    async whenIdle(timeoutMs = 5_000) {
      const deadline = Date.now() + timeoutMs;
      while (server.getStats().activeConnections > 0 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 5));
      }
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await server.stop();
      // Closing flushes PGlite's WAL to the data directory.
      await db.close();
    },
  };
}
