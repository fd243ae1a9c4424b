import { Redis } from 'ioredis';
import type pg from 'pg';
import { RateLimiterMemory, RateLimiterPostgres, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';

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
   * Taken one point at a time (requests): once a key is refused, this process refuses it from
   * memory until the window ends, so a tenant far over its rate costs no store round trip per
   * request. Other windows give a refused attempt's points back instead (a refused batch of
   * images takes nothing), which needs the store each time.
   */
  readonly oneAtATime?: boolean;
}

export type Taken = { readonly ok: true } | { readonly ok: false; readonly retryAfterMs: number };

/** The table the PostgreSQL limiter writes (created by the project's migrations). */
const TABLE = 'rate_limit_counters';

/**
 * Per-key counters over rate-limiter-flexible. A limiter holds its number of points, while
 * tenants' limits differ: one limiter per (window, points), all writing the same key of the
 * window, so changing a tenant's limit keeps what it spent. A shared store that fails falls
 * back to this process's memory (the library's insurance limiter) rather than refuse requests.
 */
export class Counters {
  private readonly limiters = new Map<string, RateLimiterAbstract>();
  private readonly redis: Redis | undefined;

  constructor(private readonly backend: CounterBackend) {
    // Commands fail at once while Redis is away (the insurance limiter answers instead).
    this.redis = backend.kind === 'redis' ? new Redis(backend.url, { enableOfflineQueue: false, maxRetriesPerRequest: 1, lazyConnect: true }) : undefined;
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

  /** Spends `n` points of `key` in `window`, out of `points`; nothing is spent when refused. */
  async take(window: CounterWindow, points: number, key: string, n: number): Promise<Taken> {
    try {
      await this.limiter(window, points).consume(key, n);
      return { ok: true };
    } catch (e) {
      if (!(e instanceof RateLimiterRes)) throw e;
      // The library counts a refused attempt: give it back, so that what was refused is not
      // counted as used (a window taken one point at a time has nothing to lose by it).
      if (!window.oneAtATime) await this.limiter(window, points).reward(key, n).catch(() => {});
      return { ok: false, retryAfterMs: Math.max(1, e.msBeforeNext) };
    }
  }

  /** Gives back points taken earlier (a later window of the same request refused it). */
  async giveBack(window: CounterWindow, points: number, key: string, n: number): Promise<void> {
    await this.limiter(window, points).reward(key, n);
  }

  private limiter(window: CounterWindow, points: number): RateLimiterAbstract {
    const id = `${window.name}:${points}`;
    let limiter = this.limiters.get(id);
    if (!limiter) {
      const common = { keyPrefix: `omnitag:${window.name}`, points, duration: window.durationS };
      const insuranceLimiter = new RateLimiterMemory(common);
      // blocked until the window ends (duration 0) from the first refusal on
      const shared = { ...common, insuranceLimiter, ...(window.oneAtATime ? { inMemoryBlockOnConsumed: points + 1, inMemoryBlockDuration: 0 } : {}) };
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
