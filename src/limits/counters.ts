import { Redis } from 'ioredis';
import { LRUCache } from 'lru-cache';
import type pg from 'pg';
import { RateLimiterMemory, RateLimiterPostgres, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import { MemoryRateStore, PostgresRateStore, RedisRateStore, type RateStore } from './request-rate.ts';

/** Where counters live: this process's memory, or a store every replica shares. */
export type CounterBackend =
  | { readonly kind: 'memory' }
  | { readonly kind: 'postgresql'; readonly pool: pg.Pool }
  | { readonly kind: 'redis'; readonly url: string };

/** A fixed window of `durationS` seconds in which a key may spend `points`. */
export interface CounterWindow {
  readonly name: string;
  readonly durationS: number;
  /**
   * Counted per UTC day, as `usage` reports it: the key carries the date, so the count starts
   * again at 00:00 UTC rather than 24 h after a tenant's first use.
   */
  readonly utcDay?: boolean;
}

const DAY_MS = 86_400_000;

/** The store's key for `key` in `window` at `now`, and when that key's count ends at the latest. */
function windowKey(window: CounterWindow, key: string, now: number): { key: string; endsInMs: number } {
  if (!window.utcDay) return { key, endsInMs: Infinity };
  return { key: `${key}:${new Date(now).toISOString().slice(0, 10)}`, endsInMs: DAY_MS - (now % DAY_MS) };
}

export type Taken = { readonly ok: true } | { readonly ok: false; readonly retryAfterMs: number };

/** The table the PostgreSQL limiter writes (created by the project's migrations). */
const TABLE = 'rate_limit_counters';

/**
 * Per-key counters: request rates as token buckets (`request-rate.ts`), image and LLM windows
 * over rate-limiter-flexible. A limiter holds its number of points, while tenants' limits
 * differ: one limiter per (window, points), all writing the same key of the window, so changing
 * a tenant's limit keeps what it spent. A shared store that fails falls back to this process's
 * memory (the library's insurance limiter, and a memory bucket store) rather than refuse requests.
 */
export class Counters {
  private readonly limiters = new Map<string, RateLimiterAbstract>();
  private readonly redis: Redis | undefined;
  private readonly rates: RateStore;
  private readonly insuranceRates = new MemoryRateStore();
  /**
   * Keys refused a request, until their next admission: refused again from memory, so a tenant
   * far over its rate costs no store round trip per request.
   */
  private readonly refusedUntil = new LRUCache<string, number>({ max: 100_000 });

  constructor(private readonly backend: CounterBackend) {
    // Commands fail at once while Redis is away (the insurance limiter answers instead).
    this.redis = backend.kind === 'redis' ? new Redis(backend.url, { enableOfflineQueue: false, maxRetriesPerRequest: 1, lazyConnect: true }) : undefined;
    this.rates = backend.kind === 'memory' ? this.insuranceRates : backend.kind === 'postgresql' ? new PostgresRateStore(backend.pool) : new RedisRateStore(this.redis!);
  }

  get kind(): CounterBackend['kind'] {
    return this.backend.kind;
  }

  /** Connects to Redis when that is the store; a store that does not answer fails start-up. */
  async start(): Promise<void> {
    await this.redis?.connect();
  }

  /** Closes the store's connections (a PostgreSQL pool given to the counters is theirs to end). */
  async stop(): Promise<void> {
    if (this.redis && this.redis.status !== 'end') await this.redis.quit().catch(() => this.redis!.disconnect());
    if (this.backend.kind === 'postgresql') await this.backend.pool.end();
  }

  /**
   * One request of `key`, out of `perSecond`: a bucket of that many requests, refilled evenly
   * over a second. Nothing is recorded when refused.
   */
  async takeRequest(key: string, perSecond: number): Promise<Taken> {
    const now = Date.now();
    const blocked = this.refusedUntil.get(key);
    if (blocked !== undefined && blocked > now) return { ok: false, retryAfterMs: blocked - now };
    const intervalMs = 1000 / perSecond;
    const burstMs = intervalMs * perSecond;
    const waitMs = await this.rates.admit(key, intervalMs, burstMs, now).catch(() => this.insuranceRates.admit(key, intervalMs, burstMs, now));
    if (waitMs === 0) return { ok: true };
    this.refusedUntil.set(key, now + waitMs, { ttl: Math.max(1, Math.ceil(waitMs)) });
    return { ok: false, retryAfterMs: waitMs };
  }

  /** Spends `n` points of `key` in `window`, out of `points`; nothing is spent when refused. */
  async take(window: CounterWindow, points: number, key: string, n: number): Promise<Taken> {
    const at = windowKey(window, key, Date.now());
    try {
      await this.limiter(window, points).consume(at.key, n);
      return { ok: true };
    } catch (e) {
      if (!(e instanceof RateLimiterRes)) throw e;
      // The library counts a refused attempt: give it back, so that what was refused is not
      // counted as used (a refused batch of images takes nothing).
      await this.limiter(window, points).reward(at.key, n).catch(() => {});
      return { ok: false, retryAfterMs: Math.max(1, Math.min(e.msBeforeNext, at.endsInMs)) };
    }
  }

  /** Gives back points taken earlier (a later window of the same request refused it). */
  async giveBack(window: CounterWindow, points: number, key: string, n: number): Promise<void> {
    await this.limiter(window, points).reward(windowKey(window, key, Date.now()).key, n);
  }

  private limiter(window: CounterWindow, points: number): RateLimiterAbstract {
    const id = `${window.name}:${points}`;
    let limiter = this.limiters.get(id);
    if (!limiter) {
      const common = { keyPrefix: `omnitag:${window.name}`, points, duration: window.durationS };
      const insuranceLimiter = new RateLimiterMemory(common);
      const shared = { ...common, insuranceLimiter };
      const b = this.backend;
      limiter =
        b.kind === 'memory'
          ? new RateLimiterMemory(common)
          : b.kind === 'postgresql'
            ? new RateLimiterPostgres({ ...shared, storeClient: b.pool, tableName: TABLE, tableCreated: true, clearExpiredByTimeout: false })
            : new RateLimiterRedis({ ...shared, storeClient: this.redis! });
      this.limiters.set(id, limiter);
    }
    return limiter;
  }
}
