import { LRUCache } from 'lru-cache';
import type { TenantLimitValues } from '../config.ts';
import { AppError, ErrorCode, notFound } from '../core/errors.ts';
import { translateDbError, type PrismaClient } from '../db/client.ts';
import type { CounterWindow, Counters } from './counters.ts';

export type LimitName = keyof TenantLimitValues;
export const LIMIT_NAMES: readonly LimitName[] = ['requestsPerSecond', 'imagesPerMinute', 'imagesPerDay', 'maxVocabularies', 'maxTags', 'llmGenerationsPerDay', 'maxStoredImages'];

/** A tenant's limits: those in force, and which of them are its own (the rest are defaults). */
export interface TenantLimitsView {
  readonly effective: TenantLimitValues;
  readonly own: { readonly [K in LimitName]: number | null };
}

/** Checks of an edit against the stored quotas read by `storedQuotas` (QUOTA_EXCEEDED); `stored` counts what the tenant holds. */
export interface StoredQuotas {
  admitVocabularies(adding: number, stored: () => Promise<number>): Promise<void>;
  admitTags(adding: number, stored: () => Promise<number>): Promise<void>;
}

/** What the platform admin sets: a number (0: no limit), null (back to the default), or absent (unchanged). */
export type TenantLimitsInput = { readonly [K in LimitName]?: number | null };

const WINDOWS = {
  imagesPerMinute: { name: 'images-minute', durationS: 60 },
  imagesPerDay: { name: 'images-day', durationS: 86_400, utcDay: true },
  llmGenerationsPerDay: { name: 'llm-day', durationS: 86_400, utcDay: true },
} satisfies Partial<Record<LimitName, CounterWindow>>;

/** Rates answer RATE_LIMITED (wait a little); quotas answer QUOTA_EXCEEDED (wait for the next day, or ask for more). */
const RATES: ReadonlySet<LimitName> = new Set(['requestsPerSecond', 'imagesPerMinute']);

export interface LimitsServiceOptions {
  prisma: PrismaClient;
  counters: Counters;
  defaults: TenantLimitValues;
  /** How long a tenant's limits are trusted before they are read again. */
  cacheMs: number;
  /** Told of every refusal (metrics). */
  onRefused?: (limit: LimitName) => void;
}

/**
 * Per-tenant limits and quotas. Rates and daily quotas are counters (`Counters`: in memory, or
 * shared by the replicas in PostgreSQL or Redis); stored quotas (vocabularies, tags) are counted
 * in the database before an edit. The platform admin is never limited.
 */
export class LimitsService {
  private readonly cache: LRUCache<string, TenantLimitValues>;

  constructor(private readonly o: LimitsServiceOptions) {
    this.cache = new LRUCache({ max: 10_000, ttl: Math.max(1, o.cacheMs) });
  }

  get store(): Counters['kind'] {
    return this.o.counters.kind;
  }

  /** The limits in force for a tenant (cached for `cacheMs`). */
  async limitsOf(tenantId: string): Promise<TenantLimitValues> {
    const cached = this.o.cacheMs > 0 ? this.cache.get(tenantId) : undefined;
    if (cached) return cached;
    const { effective } = await this.view(tenantId);
    if (this.o.cacheMs > 0) this.cache.set(tenantId, effective);
    return effective;
  }

  async view(tenantId: string): Promise<TenantLimitsView> {
    const row = await this.o.prisma.tenantLimits.findUnique({ where: { tenantId } }).catch(translateDbError);
    const own = Object.fromEntries(LIMIT_NAMES.map((n) => [n, row?.[n] ?? null])) as TenantLimitsView['own'];
    const effective = Object.fromEntries(LIMIT_NAMES.map((n) => [n, own[n] ?? this.o.defaults[n]])) as unknown as TenantLimitValues;
    return { effective, own };
  }

  /** Sets a tenant's own limits (platform admin; the caller checks). Other replicas see them within `cacheMs`. */
  async set(tenantId: string, input: TenantLimitsInput): Promise<TenantLimitsView> {
    const data: Partial<Record<LimitName, number | null>> = {};
    for (const name of LIMIT_NAMES) {
      const v = input[name];
      if (v === undefined) continue;
      if (v !== null && (!Number.isInteger(v) || v < 0 || v > 2 ** 31 - 1)) {
        throw new AppError(ErrorCode.BAD_USER_INPUT, `${name} must be a whole number ≥ 0 (0: no limit), or null for the default`, { details: { field: name } });
      }
      data[name] = v;
    }
    const exists = await this.o.prisma.tenant.findUnique({ where: { id: tenantId }, select: { id: true } }).catch(translateDbError);
    if (!exists) throw notFound('tenant');
    await this.o.prisma.tenantLimits.upsert({ where: { tenantId }, create: { tenantId, ...data }, update: data }).catch(translateDbError);
    this.cache.delete(tenantId);
    return this.view(tenantId);
  }

  /** One API request (RATE_LIMITED over `requestsPerSecond`: a token bucket of that size, refilled over a second). */
  async takeRequest(tenantId: string): Promise<void> {
    const { requestsPerSecond } = await this.limitsOf(tenantId);
    if (requestsPerSecond === 0) return;
    const taken = await this.o.counters.takeRequest(tenantId, requestsPerSecond);
    if (!taken.ok) this.refuse('requestsPerSecond', requestsPerSecond, `limit of ${requestsPerSecond} requests per second reached`, taken.retryAfterMs);
  }

  /**
   * The tenant's quota of stored images, read now (before the store's transaction opens); the
   * check runs inside it, where `stored` counts the tenant's images under a per-tenant lock.
   */
  async storedImages(tenantId: string): Promise<{ admitImages(adding: number, stored: () => Promise<number>): Promise<void> }> {
    const { maxStoredImages } = await this.limitsOf(tenantId);
    return {
      admitImages: async (adding, storedNow) => {
        if (maxStoredImages === 0 || adding === 0) return;
        const stored = await storedNow();
        if (stored + adding > maxStoredImages) this.refuse('maxStoredImages', maxStoredImages, `the tenant may keep ${maxStoredImages} images and has ${stored}`);
      },
    };
  }

  /** `n` images about to be tagged: every image of a batch counts. */
  takeImages(tenantId: string, n: number): Promise<void> {
    return this.take(tenantId, ['imagesPerMinute', 'imagesPerDay'], n);
  }

  /** `n` tags about to be sent to the LLM for descriptions. */
  takeLlmGenerations(tenantId: string, n: number): Promise<void> {
    return this.take(tenantId, ['llmGenerationsPerDay'], n);
  }

  /**
   * The tenant's quotas of stored vocabularies and tags, read now (before the edit's transaction
   * opens); the checks run inside the transaction, where the edit counts what is stored under a
   * per-tenant lock (`stored`, called only when the tenant has the quota), so concurrent edits
   * cannot overshoot a quota together.
   */
  async storedQuotas(tenantId: string): Promise<StoredQuotas> {
    const { maxVocabularies, maxTags } = await this.limitsOf(tenantId);
    return {
      admitVocabularies: async (adding, storedNow) => {
        if (maxVocabularies === 0 || adding === 0) return;
        const stored = await storedNow();
        if (stored + adding > maxVocabularies) this.refuse('maxVocabularies', maxVocabularies, `the tenant may keep ${maxVocabularies} vocabularies and has ${stored}`);
      },
      admitTags: async (adding, storedNow) => {
        if (maxTags === 0 || adding === 0) return;
        const stored = await storedNow();
        if (stored + adding > maxTags) this.refuse('maxTags', maxTags, `the tenant may keep ${maxTags} tags; it has ${stored} and this adds ${adding}`);
      },
    };
  }


  /** Takes `n` from each window in turn; when one refuses, what the earlier ones took is given back. */
  private async take(tenantId: string, names: readonly (keyof typeof WINDOWS)[], n: number): Promise<void> {
    const limits = await this.limitsOf(tenantId);
    const taken: (keyof typeof WINDOWS)[] = [];
    for (const name of names) {
      const points = limits[name];
      if (points === 0) continue;
      const result = await this.o.counters.take(WINDOWS[name], points, tenantId, n);
      if (!result.ok) {
        await Promise.all(taken.map((t) => this.o.counters.giveBack(WINDOWS[t], limits[t], tenantId, n).catch(() => {})));
        const unit = name === 'imagesPerMinute' ? 'images per minute' : name === 'imagesPerDay' ? 'images per day' : 'LLM generations per day';
        this.refuse(name, points, n > points ? `${n} at once is more than the limit of ${points} ${unit}` : `limit of ${points} ${unit} reached`, result.retryAfterMs);
      }
      taken.push(name);
    }
  }

  private refuse(name: LimitName, limit: number, message: string, retryAfterMs?: number): never {
    this.o.onRefused?.(name);
    const retry = retryAfterMs === undefined ? {} : { retryAfterMs };
    if (RATES.has(name)) throw new AppError(ErrorCode.RATE_LIMITED, message, { details: { limit: name, max: limit, ...retry } });
    throw new AppError(ErrorCode.QUOTA_EXCEEDED, `quota ${name} exceeded: ${message}`, { details: { quota: name, max: limit, ...retry } });
  }
}
