import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import { PrismaClient } from '../generated/prisma/client.ts';
import { AppError, ErrorCode } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';

export type { PrismaClient };

/**
 * The Prisma client over the pg driver adapter, plus the checks readiness needs.
 * On the embedded server the pool holds exactly one connection (see embedded.ts).
 */
export interface Database {
  readonly prisma: PrismaClient;
  /**
   * The pg pool under Prisma, for the few hot paths that bypass Prisma (vocabulary snapshots and
   * text embeddings). Sharing it keeps the embedded database's single connection the only one.
   */
  readonly pool: pg.Pool;
  /** True when the database answers within `timeoutMs`. */
  ping(timeoutMs?: number): Promise<boolean>;
  close(): Promise<void>;
}

export function openDatabase(url: string, maxConnections: number, log: Logger): Database {
  const pool = new pg.Pool({ connectionString: url, max: maxConnections, connectionTimeoutMillis: 5_000, idleTimeoutMillis: 30_000 });
  // A dropped connection is normal when the server restarts; the pool reconnects.
  pool.on('error', (err) => log.warn({ err }, 'database pool error'));
  const adapter = new PrismaPg(pool, { onConnectionError: (err) => log.warn({ err }, 'database connection error') });
  const prisma = new PrismaClient({ adapter });
  return {
    prisma,
    pool,
    async ping(timeoutMs = 2_000) {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<false>((resolve) => {
        timer = setTimeout(() => resolve(false), timeoutMs);
      });
      try {
        return await Promise.race([prisma.$queryRaw`SELECT 1`.then(() => true), timeout]);
      } catch {
        return false;
      } finally {
        clearTimeout(timer);
      }
    },
    async close() {
      await prisma.$disconnect();
      await pool.end();
    },
  };
}

/**
 * Translates the driver's and Prisma's errors into AppErrors where callers can act on them;
 * anything else is rethrown unchanged and masked at the API edge.
 */
export function translateDbError(e: unknown): never {
  const code = (e as { code?: string } | null)?.code;
  if (code === 'P2002') throw new AppError(ErrorCode.CONFLICT, 'an object with the same unique name already exists', { cause: e });
  if (code === 'P2025') throw new AppError(ErrorCode.NOT_FOUND, 'not found', { cause: e });
  if (code === 'ECONNREFUSED' || code === 'P1001' || code === 'P1017' || /terminated|ECONNRESET|connect/i.test(String((e as Error)?.message))) {
    throw new AppError(ErrorCode.DATABASE_UNAVAILABLE, 'the database is unavailable; try again shortly', { cause: e });
  }
  throw e;
}
