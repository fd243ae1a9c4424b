import type { Redis } from 'ioredis';
import { LRUCache } from 'lru-cache';
import type pg from 'pg';

/**
 * Request rates as a token bucket, kept as one "theoretical arrival time" per key (GCRA): a key
 * may spend its whole allowance at once, then one request every 1/rate seconds. Fixed windows
 * (the limiter library's model) admit the allowance again at the start of every window, so a
 * tenant far over its rate arrived in bursts that other tenants felt in their latency tails;
 * the bucket admits it evenly.
 */
export interface RateStore {
  /**
   * Admits one request for `key` when the bucket allows it and records it; otherwise records
   * nothing. Returns 0 when admitted, else the milliseconds until one would be.
   * `intervalMs`: time per request (1000 / rate); `burstMs`: the bucket's size in time
   * (allowance × interval); `now`: this replica's clock in ms.
   */
  admit(key: string, intervalMs: number, burstMs: number, now: number): Promise<number>;
}

/** A key's state: the time at which its bucket would be full again (ms). */
function decide(tat: number, intervalMs: number, burstMs: number, now: number): { next: number; waitMs: number } {
  const next = Math.max(tat, now) + intervalMs;
  return { next, waitMs: Math.max(0, next - burstMs - now) };
}

/** This process's buckets (one replica, or the fallback while a shared store fails). */
export class MemoryRateStore implements RateStore {
  // A key whose bucket is full again holds nothing worth keeping: entries live until then.
  private readonly tats = new LRUCache<string, number>({ max: 100_000, ttlAutopurge: false });

  admit(key: string, intervalMs: number, burstMs: number, now: number): Promise<number> {
    const { next, waitMs } = decide(this.tats.get(key) ?? now, intervalMs, burstMs, now);
    if (waitMs === 0) this.tats.set(key, next, { ttl: Math.max(1, Math.ceil(next - now)) });
    return Promise.resolve(waitMs);
  }
}

/** The table the PostgreSQL store writes (created by the project's migrations). */
const TABLE = 'rate_limit_buckets';

/**
 * Buckets every replica shares, in PostgreSQL: one upsert that advances the key's time only when
 * the request is admitted (the row lock serialises replicas), and reports the time it saw.
 */
export class PostgresRateStore implements RateStore {
  constructor(private readonly pool: pg.Pool) {}

  async admit(key: string, intervalMs: number, burstMs: number, now: number): Promise<number> {
    const { rows } = await this.pool.query<{ admitted: string | null; seen: string | null }>({
      name: 'omnitag-rate-admit',
      text: `WITH seen AS (SELECT tat FROM ${TABLE} WHERE key = $1),
        admitted AS (
          INSERT INTO ${TABLE} AS b (key, tat) VALUES ($1, $2::bigint + $3::bigint)
          ON CONFLICT (key) DO UPDATE SET tat = GREATEST(b.tat, $2::bigint) + $3::bigint
            WHERE GREATEST(b.tat, $2::bigint) + $3::bigint - $4::bigint <= $2::bigint
          RETURNING tat)
        SELECT (SELECT tat FROM admitted) AS admitted, (SELECT tat FROM seen) AS seen`,
      values: [key, Math.floor(now), Math.round(intervalMs), Math.round(burstMs)],
    });
    const row = rows[0]!;
    if (row.admitted !== null) return 0;
    // Refused: what the row held (another replica may have moved it since; the wait is a hint).
    return Math.max(1, decide(Number(row.seen ?? now), intervalMs, burstMs, now).waitMs);
  }
}

// Atomic in Redis: read, decide and write in one script. ARGV: now, interval, burst (ms).
const ADMIT_SCRIPT = `
local now = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or ARGV[1])
local nextTat = math.max(tat, now) + tonumber(ARGV[2])
local wait = nextTat - tonumber(ARGV[3]) - now
if wait > 0 then return wait end
redis.call('SET', KEYS[1], nextTat, 'PX', math.max(1, math.ceil(nextTat - now)))
return 0`;

/** Buckets every replica shares, in Redis (keys expire when their bucket is full again). */
export class RedisRateStore implements RateStore {
  constructor(private readonly redis: Redis) {}

  async admit(key: string, intervalMs: number, burstMs: number, now: number): Promise<number> {
    const wait = (await this.redis.eval(ADMIT_SCRIPT, 1, `omnitag:rate:${key}`, Math.floor(now), Math.round(intervalMs), Math.round(burstMs))) as number;
    return wait > 0 ? Math.max(1, wait) : 0;
  }
}
