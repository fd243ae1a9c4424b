import { badInput } from '../core/errors.ts';
import { translateDbError, type PrismaClient } from '../db/client.ts';

export type UsageGranularity = 'HOUR' | 'DAY' | 'MONTH';

export interface UsagePeriodView {
  readonly start: Date;
  readonly tenantId: string | null;
  readonly requests: number;
  readonly imagesTagged: number;
  readonly errors: { code: string; count: number }[];
  readonly tagsScored: number;
  readonly tagsDescribed: number;
  readonly descriptionsGenerated: number;
  readonly llmCalls: number;
  readonly llmTokens: number;
  /** Images added to the library by tagging requests. */
  readonly storedImages: number;
}

export interface UsageQuery {
  /** One tenant, or null for all of them together (the platform admin; the caller decides who may ask). */
  readonly tenantId: string | null;
  readonly from: Date;
  readonly to: Date;
  readonly granularity: UsageGranularity;
}

const PERIOD_MS: Record<UsageGranularity, number> = { HOUR: 3_600_000, DAY: 86_400_000, MONTH: 28 * 86_400_000 };
const MAX_PERIODS = 1_000;

type Row = { start: Date; requests?: bigint; images?: bigint; tags?: bigint; stored?: bigint; code?: string; n?: bigint; described?: bigint; descriptions?: bigint; calls?: bigint; tokens?: bigint | null };

/**
 * Usage per period from what the service already keeps: tagging runs (requests, images, tag
 * scores, errors by code) and finished description-job items (descriptions, LLM calls and the
 * tokens the endpoint reported). Periods are UTC; only periods with some use are listed.
 */
export class UsageReport {
  constructor(private readonly prisma: PrismaClient) {}

  async report(q: UsageQuery): Promise<UsagePeriodView[]> {
    const { from, to, granularity } = q;
    if (!(from instanceof Date) || !(to instanceof Date) || Number.isNaN(from.getTime()) || Number.isNaN(to.getTime())) throw badInput('from and to must be date-times', { field: 'from' });
    if (to <= from) throw badInput('to must be after from', { field: 'to' });
    if ((to.getTime() - from.getTime()) / PERIOD_MS[granularity] > MAX_PERIODS) {
      throw badInput(`at most ${MAX_PERIODS} periods of ${granularity.toLowerCase()} at once`, { field: 'granularity' });
    }
    const unit = granularity.toLowerCase();
    // Timestamps are stored as UTC without a zone: compare and truncate them as such.
    const lo = from.toISOString();
    const hi = to.toISOString();
    const tenant = q.tenantId;
    const [runs, errors, described] = await Promise.all([
      this.prisma.$queryRaw<Row[]>`
        SELECT date_trunc(${unit}, created_at) AS start, count(*) AS requests,
               sum(image_count - failed_count) AS images, sum(tags_scored) AS tags, sum(stored_count) AS stored
          FROM tagging_runs
         WHERE created_at >= (${lo}::timestamptz AT TIME ZONE 'UTC') AND created_at < (${hi}::timestamptz AT TIME ZONE 'UTC')
           AND (${tenant}::uuid IS NULL OR tenant_id = ${tenant}::uuid)
         GROUP BY 1`,
      this.prisma.$queryRaw<Row[]>`
        SELECT date_trunc(${unit}, r.created_at) AS start, e.key AS code, sum(e.value::bigint) AS n
          FROM tagging_runs r, jsonb_each_text(r.error_codes) e
         WHERE r.error_codes IS NOT NULL
           AND r.created_at >= (${lo}::timestamptz AT TIME ZONE 'UTC') AND r.created_at < (${hi}::timestamptz AT TIME ZONE 'UTC')
           AND (${tenant}::uuid IS NULL OR r.tenant_id = ${tenant}::uuid)
         GROUP BY 1, 2`,
      this.prisma.$queryRaw<Row[]>`
        SELECT date_trunc(${unit}, i.updated_at) AS start, count(*) FILTER (WHERE i.state = 'READY') AS described,
               sum(j.descriptions_per_tag) FILTER (WHERE i.state = 'READY') AS descriptions,
               sum(i.llm_calls) AS calls, sum(i.llm_tokens) AS tokens
          FROM description_job_items i JOIN description_jobs j ON j.id = i.job_id
         WHERE (i.state = 'READY' OR i.llm_calls > 0)
           AND i.updated_at >= (${lo}::timestamptz AT TIME ZONE 'UTC') AND i.updated_at < (${hi}::timestamptz AT TIME ZONE 'UTC')
           AND (${tenant}::uuid IS NULL OR i.tenant_id = ${tenant}::uuid)
         GROUP BY 1`,
    ]).catch(translateDbError);

    const periods = new Map<number, { -readonly [K in keyof UsagePeriodView]: UsagePeriodView[K] }>();
    const period = (start: Date) => {
      // date_trunc of a zone-less timestamp comes back as that wall time read as UTC
      const key = start.getTime();
      let p = periods.get(key);
      if (!p) periods.set(key, (p = { start, tenantId: tenant, requests: 0, imagesTagged: 0, errors: [], tagsScored: 0, tagsDescribed: 0, descriptionsGenerated: 0, llmCalls: 0, llmTokens: 0, storedImages: 0 }));
      return p;
    };
    for (const r of runs) Object.assign(period(r.start), { requests: Number(r.requests), imagesTagged: Number(r.images ?? 0), tagsScored: Number(r.tags ?? 0), storedImages: Number(r.stored ?? 0) });
    for (const r of errors) period(r.start).errors.push({ code: r.code!, count: Number(r.n) });
    for (const r of described) {
      Object.assign(period(r.start), { tagsDescribed: Number(r.described), descriptionsGenerated: Number(r.descriptions ?? 0), llmCalls: Number(r.calls ?? 0), llmTokens: Number(r.tokens ?? 0) });
    }
    const out = [...periods.values()].sort((a, b) => a.start.getTime() - b.start.getTime());
    for (const p of out) p.errors.sort((a, b) => a.code.localeCompare(b.code));
    return out;
  }
}
