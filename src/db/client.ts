import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import { PrismaClient } from '../generated/prisma/client.ts';
import { Semaphore, WaitTimeoutError } from '../core/concurrency.ts';
import { AppError, ErrorCode } from '../core/errors.ts';
import { currentFairnessKey } from '../core/fairness.ts';
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

/** Bounds on every wait for the database, in milliseconds (defaults: src/config.ts). */
export interface DatabaseTimeouts {
  /** Opening a connection; also the longest wait for a free connection of the pool. */
  readonly connectMs: number;
  /** One statement, cut by the server (`statement_timeout`); the client stops waiting for an answer `READ_GRACE_MS` later. */
  readonly statementMs: number;
  /** The server ends a session left idle inside a transaction this long, releasing its locks. */
  readonly idleInTransactionMs: number;
}

export interface DatabaseOptions {
  /** Without them nothing is bounded (pg's defaults); the application always passes its configuration's. */
  readonly timeouts?: DatabaseTimeouts;
  /**
   * Awaited before a connection is opened while the pool holds none: the embedded server takes
   * one connection and frees it a moment after its client closed (EmbeddedPostgres.whenIdle).
   */
  readonly beforeConnect?: () => Promise<void>;
}

/**
 * How much longer than the server's statement timeout the client waits for an answer. A server
 * that cut a statement answers at once; one that says nothing at all (a network partition, packets
 * dropped) is given up on after this, and its connection with it.
 */
export const READ_GRACE_MS = 1_000;
/** TCP keep-alive probes start after a connection was quiet this long. */
const KEEP_ALIVE_DELAY_MS = 10_000;

export function openDatabase(url: string, maxConnections: number, log: Logger, options: DatabaseOptions = {}): Database {
  const t = options.timeouts;
  const config: pg.PoolConfig = {
    connectionString: url,
    max: maxConnections,
    Client: guardedClient(log),
    idleTimeoutMillis: 30_000,
    keepAlive: true,
    keepAliveInitialDelayMillis: KEEP_ALIVE_DELAY_MS,
    ...(t
      ? {
          connectionTimeoutMillis: t.connectMs,
          statement_timeout: t.statementMs,
          query_timeout: t.statementMs + READ_GRACE_MS,
          idle_in_transaction_session_timeout: t.idleInTransactionMs,
        }
      : {}),
  };
  const pool = new FairPool(config, t?.connectMs, options.beforeConnect);
  // A dropped connection is normal when the server restarts or the network fails; the pool
  // reconnects on the next checkout.
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
      // Closing says goodbye to the server on each connection and waits for it to hang up; a
      // server that has gone silent never does, so after a while the connections are cut.
      let timer: NodeJS.Timeout | undefined;
      const cut = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          pool.abandonAll();
          resolve();
        }, t?.connectMs ?? CLOSE_WAIT_MS);
      });
      try {
        await Promise.race([prisma.$disconnect().then(() => pool.end()), cut]);
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

/** How long closing waits for the server to hang up when no timeouts were given. */
const CLOSE_WAIT_MS = 5_000;

/** A pg client that is never left without an `error` listener and gives up a connection that stopped answering. */
interface GuardedClient extends pg.Client {
  /** Set once the connection cannot be trusted: the pool closes it instead of handing it out again. */
  readonly broken: boolean;
  /** Cuts the connection now: whatever waits on it fails at once. */
  abandon(): void;
}

function guardedClient(log: Logger): typeof pg.Client {
  return class extends pg.Client implements GuardedClient {
    broken = false;

    constructor(config?: string | pg.ClientConfig) {
      super(config);
      // A connection can fail at any moment, also while nobody holds it or between the queries of
      // whoever does (the pool listens only while a client is idle). An `error` event without a
      // listener would end the process; this one is always there.
      this.on('error', (err) => {
        this.broken = true;
        log.debug({ err }, 'database connection failed');
      });
    }

    override query(...args: unknown[]): never {
      const noted = (err: unknown) => {
        if (err) this.failed(err);
      };
      const last = args.length - 1;
      const callback = args[last];
      if (typeof callback === 'function') {
        args[last] = (err: unknown, result: unknown) => {
          noted(err);
          (callback as (e: unknown, r: unknown) => void)(err, result);
        };
      }
      const result = (super.query as (...a: unknown[]) => unknown).apply(this, args);
      // Observed, not handled: the caller still gets the rejection.
      if (result instanceof Promise) result.catch(noted);
      return result as never;
    }

    /**
     * Errors the server sent (they carry a severity: a constraint, a cancelled statement) leave
     * the connection usable. Any other error (no answer in time, the socket failed) means the
     * session's state is unknown: the connection is closed now, so whatever was queued behind
     * on it fails at once instead of one read timeout after another.
     */
    private failed(err: unknown): void {
      if (typeof (err as { severity?: unknown }).severity !== 'string') this.abandon();
    }

    abandon(): void {
      this.broken = true;
      (this as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
    }
  };
}

/**
 * The pool behind Prisma and the raw hot paths, with one fair, bounded wait in front of it: a
 * caller waits at most the connect timeout for a connection, and callers take turns by tenant
 * (`core/fairness.ts`), so one tenant's burst cannot hold the embedded database's single
 * connection while another tenant's requests time out behind it. A client that failed goes back
 * to the pool as broken and is closed, never handed out again.
 */
class FairPool extends pg.Pool {
  private readonly gate: Semaphore;
  /** Every client the pool holds, for `abandonAll`. */
  private readonly clients = new Set<GuardedClient>();

  constructor(
    config: pg.PoolConfig,
    private readonly waitMs: number | undefined,
    private readonly beforeConnect: (() => Promise<void>) | undefined,
  ) {
    super(config);
    this.gate = new Semaphore(config.max ?? 10);
    this.on('connect', (client) => this.clients.add(client as unknown as GuardedClient));
    this.on('remove', (client) => this.clients.delete(client as unknown as GuardedClient));
  }

  /** Cuts every connection at once, without a word to the server. */
  abandonAll(): void {
    for (const client of this.clients) client.abandon();
  }

  override connect(): Promise<pg.PoolClient>;
  override connect(callback: (err: Error | undefined, client: pg.PoolClient | undefined, done: (release?: unknown) => void) => void): void;
  override connect(callback?: (err: Error | undefined, client: pg.PoolClient | undefined, done: (release?: unknown) => void) => void): Promise<pg.PoolClient> | void {
    const checkout = this.checkout();
    if (!callback) return checkout;
    checkout.then(
      (client) => callback(undefined, client, (release?: unknown) => client.release(release as Error | boolean | undefined)),
      (err: Error) => callback(err, undefined, () => {}),
    );
  }

  private async checkout(): Promise<pg.PoolClient> {
    const key = currentFairnessKey() ?? '';
    const free = await this.gate.acquire({ key, timeoutMs: this.waitMs ?? 2 ** 31 - 1 }).catch((e: unknown) => {
      throw e instanceof WaitTimeoutError ? new Error(`timeout exceeded when trying to connect: no database connection came free within ${e.timeoutMs} ms`) : e;
    });
    try {
      if (this.beforeConnect && this.totalCount === 0) await this.beforeConnect();
      const client = await super.connect();
      const release = client.release;
      client.release = (err?: Error | boolean) => {
        free();
        release(err || ((client as unknown as GuardedClient).broken ? new Error('database connection given up') : undefined));
      };
      return client;
    } catch (e) {
      free();
      throw e;
    }
  }
}

/** SQLSTATE classes of a server that cannot serve now: connection exceptions (08), insufficient resources (53), operator intervention (57: shutdown, statement timeout), system errors (58). */
const UNAVAILABLE_SQLSTATE = /^(?:08|53|57|58)[0-9A-Z]{3}$/;
/** And single states: lock timeout, idle-in-transaction timeout, serialization failure, deadlock. */
const UNAVAILABLE_STATES = new Set(['55P03', '25P03', '40001', '40P01']);
/** Prisma's codes for the same: unreachable, timed out, connection closed, pool timeout, transaction closed or failed, write conflict, too many connections. */
const UNAVAILABLE_PRISMA = new Set(['P1001', 'P1002', 'P1008', 'P1017', 'P1018', 'P2024', 'P2028', 'P2034', 'P2037']);
/** Socket errors of the driver. */
const UNAVAILABLE_SOCKET = new Set(['ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'EHOSTDOWN', 'ENETUNREACH', 'ENETDOWN', 'EAI_AGAIN', 'ENOTFOUND']);
/** What the driver adapter calls them (a DriverAdapterError's `cause.kind`). */
const UNAVAILABLE_KINDS = new Set(['DatabaseNotReachable', 'ConnectionClosed', 'SocketTimeout', 'TooManyConnections', 'TransactionWriteConflict', 'TransactionAlreadyClosed']);
/** Messages of the pg driver, the pool above and Prisma, for errors that carry no code. */
const UNAVAILABLE_MESSAGE =
  /Connection terminated|Query read timeout|timeout exceeded when trying to connect|not queryable|Cannot use a pool after calling end|database connection given up|Server has closed the connection|Can't reach database server|Timed out fetching a new connection|Transaction already closed|Unable to start a transaction|Too many connections|\bECONN(?:REFUSED|RESET|ABORTED)\b|\bETIMEDOUT\b|\bEPIPE\b|Code: `(?:(?:08|53|57|58)[0-9A-Z]{3}|55P03|25P03|40001|40P01)`/i;

/**
 * Whether an error (of pg, the pool, the driver adapter or Prisma, however deeply wrapped) means
 * that the database cannot serve now — unreachable, not answering, restarting, out of
 * connections, or a statement or session cut short by a timeout — rather than that the request
 * was wrong.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  const pending: unknown[] = [error];
  const seen = new Set<unknown>();
  while (pending.length > 0 && seen.size < 16) {
    const e = pending.pop();
    if (!e || typeof e !== 'object' || seen.has(e)) continue;
    seen.add(e);
    const o = e as { code?: unknown; originalCode?: unknown; kind?: unknown; message?: unknown; cause?: unknown; meta?: { driverAdapterError?: unknown }; originalError?: unknown };
    for (const code of [o.code, o.originalCode]) {
      if (typeof code !== 'string') continue;
      if (UNAVAILABLE_SQLSTATE.test(code) || UNAVAILABLE_STATES.has(code) || UNAVAILABLE_PRISMA.has(code) || UNAVAILABLE_SOCKET.has(code)) return true;
    }
    if (typeof o.kind === 'string' && UNAVAILABLE_KINDS.has(o.kind)) return true;
    if (typeof o.message === 'string' && UNAVAILABLE_MESSAGE.test(o.message)) return true;
    pending.push(o.cause, o.meta?.driverAdapterError, o.originalError);
  }
  return false;
}

/**
 * The one translation of the driver's and Prisma's errors into AppErrors: every error that says
 * the database cannot serve now becomes DATABASE_UNAVAILABLE, a duplicate CONFLICT, a missing
 * row NOT_FOUND; AppErrors pass unchanged; anything else is rethrown as it is and masked at the
 * API edge.
 */
export function translateDbError(e: unknown): never {
  if (e instanceof AppError) throw e;
  const code = (e as { code?: string } | null)?.code;
  if (code === 'P2002') throw new AppError(ErrorCode.CONFLICT, 'an object with the same unique name already exists', { cause: e });
  if (code === 'P2025') throw new AppError(ErrorCode.NOT_FOUND, 'not found', { cause: e });
  if (isDatabaseUnavailable(e)) {
    throw new AppError(ErrorCode.DATABASE_UNAVAILABLE, 'the database is unavailable; try again shortly', { cause: e, details: { retryable: true } });
  }
  throw e;
}
