import type { DescriptionJob, DescriptionState } from '../../generated/prisma/client.ts';
import { chunks } from '../../core/chunks.ts';
import { pageById, type Page } from '../../core/paging.ts';
import type { Db } from './transactions.ts';

export type { DescriptionJob };

export interface NewJob {
  tenantId: string;
  vocabularyId: string;
  generator: 'llm' | 'template';
  model: string | null;
  descriptionsPerTag: number;
  /** One item per tag, PENDING and claimable at once. */
  tagIds: readonly string[];
}

export interface JobItemRow {
  id: string;
  tagId: string;
  tagName: string;
  state: DescriptionState;
  attempts: number;
  error: string | null;
  updatedAt: Date;
}

/** Ids per `IN (…)` list and rows per createMany. */
const ID_CHUNK = 5_000;

/** The `description_jobs` and `description_job_items` tables as the job service and edits see them; every query is scoped by the tenant. */
export class JobRepository {
  constructor(private readonly db: Db) {}

  /** Job items of every tenant by state: the operators' view (metrics), never a tenant's. */
  async itemsByState(): Promise<Record<DescriptionState, number>> {
    const groups = await this.db.descriptionJobItem.groupBy({ by: ['state'], _count: { _all: true } });
    const out: Record<DescriptionState, number> = { PENDING: 0, GENERATING: 0, READY: 0, FAILED: 0 };
    for (const g of groups) out[g.state] = g._count._all;
    return out;
  }

  /** Tags among `tagIds` whose generation is already queued or running in an unfinished job. */
  async busyTags(tenantId: string, tagIds: readonly string[]): Promise<Set<string>> {
    const busy = new Set<string>();
    for (const part of chunks(tagIds, ID_CHUNK)) {
      const active = await this.db.descriptionJobItem.findMany({
        where: { tenantId, tagId: { in: part }, state: { in: ['PENDING', 'GENERATING'] }, job: { state: { in: ['QUEUED', 'RUNNING'] } } },
        select: { tagId: true },
      });
      for (const a of active) busy.add(a.tagId);
    }
    return busy;
  }

  /** A job with its items; one without items is SUCCEEDED at once. */
  async create(job: NewJob): Promise<DescriptionJob> {
    const { tenantId, tagIds } = job;
    const now = new Date();
    const created = await this.db.descriptionJob.create({
      data: {
        tenantId,
        vocabularyId: job.vocabularyId,
        generator: job.generator,
        model: job.model,
        descriptionsPerTag: job.descriptionsPerTag,
        total: tagIds.length,
        state: tagIds.length ? 'QUEUED' : 'SUCCEEDED',
        finishedAt: tagIds.length ? null : now,
      },
    });
    for (const part of chunks(tagIds, ID_CHUNK)) {
      await this.db.descriptionJobItem.createMany({ data: part.map((tagId) => ({ tenantId, jobId: created.id, tagId, runAfter: now })) });
    }
    return created;
  }

  byId(tenantId: string, id: string): Promise<DescriptionJob | null> {
    return this.db.descriptionJob.findFirst({ where: { id, tenantId } });
  }

  /** A job's items by tag name, then id. */
  items(tenantId: string, jobId: string, state: DescriptionState | undefined, page: { first: number; after?: string | null }): Promise<Page<JobItemRow>> {
    const { db } = this;
    const where = { tenantId, jobId, ...(state ? { state } : {}) };
    return pageById(
      page,
      {
        exists: (id) => db.descriptionJobItem.findFirst({ where: { ...where, id }, select: { id: true } }),
        rows: (window) =>
          db.descriptionJobItem.findMany({ where, include: { tag: { select: { name: true, key: true } } }, orderBy: [{ tag: { key: 'asc' } }, { id: 'asc' }], ...window }),
        count: () => db.descriptionJobItem.count({ where }),
      },
      (rows) => rows.map((r) => ({ id: r.id, tagId: r.tagId, tagName: r.tag.name, state: r.state, attempts: r.attempts, error: r.error, updatedAt: r.updatedAt })),
    );
  }

  /**
   * Cancels an unfinished job: its waiting and running items fail with "cancelled" (a running
   * item's late result is refused by its claim token). Returns the cancelled items' tags.
   */
  async cancel(tenantId: string, jobId: string): Promise<{ job: DescriptionJob; tagIds: string[] }> {
    const open = { jobId, tenantId, state: { in: ['PENDING', 'GENERATING'] as DescriptionState[] } };
    const items = await this.db.descriptionJobItem.findMany({ where: open, select: { tagId: true } });
    await this.db.descriptionJobItem.updateMany({ where: open, data: { state: 'FAILED', error: 'cancelled', claimToken: null, leaseExpiresAt: null } });
    const job = await this.db.descriptionJob.update({
      where: { tenantId_id: { tenantId, id: jobId } },
      data: { state: 'CANCELLED', finishedAt: new Date(), failed: { increment: items.length } },
    });
    return { job, tagIds: items.map((i) => i.tagId) };
  }

  /**
   * Takes tags out of unfinished jobs (they were removed or given manual descriptions): their
   * pending items are deleted and the jobs' totals shrink, so the jobs still finish.
   */
  async detachTags(tenantId: string, tagIds: readonly string[]): Promise<void> {
    if (tagIds.length === 0) return;
    const rows = await this.db.$queryRaw<{ job_id: string }[]>`
      DELETE FROM description_job_items i
       USING description_jobs j
       WHERE i.job_id = j.id AND i.tenant_id = ${tenantId}::uuid AND i.tag_id = ANY(${[...tagIds]}::uuid[])
         AND i.state IN ('PENDING', 'GENERATING') AND j.state IN ('QUEUED', 'RUNNING')
      RETURNING i.job_id`;
    const perJob = new Map<string, number>();
    for (const r of rows) perJob.set(r.job_id, (perJob.get(r.job_id) ?? 0) + 1);
    for (const [jobId, n] of perJob) {
      await this.db.$executeRaw`
        UPDATE description_jobs SET total = total - ${n}, updated_at = now() WHERE id = ${jobId}::uuid AND tenant_id = ${tenantId}::uuid`;
    }
    await this.finishIfDone(tenantId, [...perJob.keys()]);
  }

  /** Counts a finished item of the job. */
  async countItem(tenantId: string, jobId: string, outcome: 'succeeded' | 'failed'): Promise<void> {
    if (outcome === 'succeeded') {
      await this.db.$executeRaw`UPDATE description_jobs SET succeeded = succeeded + 1, updated_at = now() WHERE id = ${jobId}::uuid AND tenant_id = ${tenantId}::uuid`;
    } else {
      await this.db.$executeRaw`UPDATE description_jobs SET failed = failed + 1, updated_at = now() WHERE id = ${jobId}::uuid AND tenant_id = ${tenantId}::uuid`;
    }
  }

  /** Finishes jobs whose items are all done: SUCCEEDED when none failed, else FAILED with a count. */
  async finishIfDone(tenantId: string, jobIds: readonly string[]): Promise<void> {
    if (jobIds.length === 0) return;
    await this.db.$executeRaw`
      UPDATE description_jobs
         SET state = (CASE WHEN failed = 0 THEN 'SUCCEEDED' ELSE 'FAILED' END)::"JobState",
             error = CASE WHEN failed = 0 THEN error ELSE failed || ' of ' || total || ' tags failed' END,
             finished_at = now(), updated_at = now()
       WHERE id = ANY(${[...jobIds]}::uuid[]) AND tenant_id = ${tenantId}::uuid
         AND state IN ('QUEUED', 'RUNNING') AND succeeded + failed >= total`;
  }
}
