import type { JobState } from '../../generated/prisma/client.ts';
import { badInput, notFound } from '../../core/errors.ts';
import { isUuid } from '../../core/ids.ts';
import type { Page } from '../../core/paging.ts';
import type { VocabContext } from '../context.ts';
import type { DescriptionJob, JobItemRow } from '../repository/jobs.ts';
import { checkTenant } from '../use-cases/scope.ts';
import { modelOf, type DescriptionGenerator } from './generators.ts';
import { MAX_TEMPLATE_DESCRIPTIONS } from './templates.ts';

export interface DescriptionJobView {
  id: string;
  vocabularyId: string;
  state: JobState;
  /** `llm:<model>` or `template`. */
  generator: string;
  descriptionsPerTag: number;
  total: number;
  succeeded: number;
  failed: number;
  /** Finished items / total, 0–1 (1 for an empty job). */
  progress: number;
  error: string | null;
  createdAt: Date;
  updatedAt: Date;
  finishedAt: Date | null;
}

export interface CreateJobResult {
  job: DescriptionJobView;
  /** Tags left out because generation was already queued for them (by another job). */
  alreadyQueued: string[];
}

export type DescriptionJobItemView = JobItemRow;

function toJobView(j: DescriptionJob): DescriptionJobView {
  const done = j.succeeded + j.failed;
  return {
    id: j.id,
    vocabularyId: j.vocabularyId,
    state: j.state,
    generator: j.generator === 'llm' ? `llm:${j.model ?? ''}` : 'template',
    descriptionsPerTag: j.descriptionsPerTag,
    total: j.total,
    succeeded: j.succeeded,
    failed: j.failed,
    progress: j.total === 0 ? 1 : Math.min(1, done / j.total),
    error: j.error,
    createdAt: j.createdAt,
    updatedAt: j.updatedAt,
    finishedAt: j.finishedAt,
  };
}

const isOpen = (state: JobState) => state === 'QUEUED' || state === 'RUNNING';

/** Description-generation jobs of a tenant. Every method is scoped by the tenant id it is given. */
export class DescriptionJobService {
  constructor(private readonly ctx: VocabContext) {}

  /**
   * Queues generation for some tags of a vocabulary (all of them when `tagIds` is omitted).
   * Tags whose generation is already queued are left out, so asking twice does not double the
   * work. Marks the tags PENDING; they keep being scored with their current (template)
   * descriptions until theirs are ready.
   */
  async create(
    tenantId: string,
    vocabularyId: string,
    options: { tagIds?: readonly string[] | null; count?: number | null; generator?: 'auto' | 'llm' | 'template' | null } = {},
  ): Promise<CreateJobResult> {
    checkTenant(tenantId);
    const { settings } = this.ctx;
    const wanted = options.generator ?? 'auto';
    if (wanted === 'llm' && !this.ctx.llm) throw badInput('no LLM is configured (OMNITAG_LLM_BASE_URL); use the template generator', { field: 'generator' });
    const generator: DescriptionGenerator = wanted === 'template' ? this.ctx.template : (this.ctx.llm ?? this.ctx.template);
    const max = generator.kind === 'template' ? Math.min(MAX_TEMPLATE_DESCRIPTIONS, settings.maxDescriptionsPerTag) : settings.maxDescriptionsPerTag;
    const count = options.count ?? Math.min(settings.descriptionsPerTag, max);
    if (!Number.isInteger(count) || count < 1 || count > max) throw badInput(`count must be between 1 and ${max}`, { field: 'count' });
    const tagIds = options.tagIds ? [...new Set(options.tagIds)] : undefined;
    if (tagIds && tagIds.some((id) => !isUuid(id))) throw notFound('tag');

    const result = await this.ctx.store.edit(tenantId, vocabularyId, async (tx, revision) => {
      const ids = await tx.tags.ids(tenantId, vocabularyId, tagIds);
      if (tagIds && ids.length !== tagIds.length) throw notFound('tag');
      const busy = await tx.jobs.busyTags(tenantId, ids);
      const targets = ids.filter((id) => !busy.has(id));
      // Charged inside the edit: a refusal leaves no job behind (the counters have connections of their own).
      if (generator.kind === 'llm' && targets.length > 0) await this.ctx.quotas?.takeLlmGenerations(tenantId, targets.length);
      const job = await tx.jobs.create({
        tenantId,
        vocabularyId,
        generator: generator.kind,
        // the replicas that may claim its items: those with this model (job-claims.ts)
        model: modelOf(generator),
        descriptionsPerTag: count,
        tagIds: targets,
      });
      if (targets.length > 0) {
        await tx.tags.markPending(tenantId, targets, revision + 1);
        await tx.vocabularies.setRevision(tenantId, vocabularyId, revision + 1);
      }
      return { job: toJobView(job), alreadyQueued: [...busy] };
    });
    if (result.job.total > 0) this.ctx.nudgeWorker();
    return result;
  }

  /** Job items of all tenants by state, for operators' metrics. */
  itemsByState(): Promise<Record<'PENDING' | 'GENERATING' | 'READY' | 'FAILED', number>> {
    return this.ctx.store.run((db) => db.jobs.itemsByState());
  }

  async get(tenantId: string, jobId: string): Promise<DescriptionJobView> {
    checkTenant(tenantId);
    if (!isUuid(jobId)) throw notFound('description job');
    const job = await this.ctx.store.run((db) => db.jobs.byId(tenantId, jobId));
    if (!job) throw notFound('description job');
    return toJobView(job);
  }

  /** Per-tag status of a job, by tag name. */
  async items(
    tenantId: string,
    jobId: string,
    options: { first: number; after?: string | null; state?: DescriptionJobItemView['state'] | null },
  ): Promise<Page<DescriptionJobItemView>> {
    await this.get(tenantId, jobId);
    return this.ctx.store.run((db) => db.jobs.items(tenantId, jobId, options.state ?? undefined, options));
  }

  /**
   * Cancels an unfinished job: its waiting items fail with "cancelled" and their tags go back
   * to READY with the descriptions they have. Work in flight is discarded when it finishes.
   */
  async cancel(tenantId: string, jobId: string): Promise<DescriptionJobView> {
    const current = await this.get(tenantId, jobId);
    if (!isOpen(current.state)) return current;
    const job = await this.ctx.store.edit(tenantId, current.vocabularyId, async (tx, revision) => {
      const j = await tx.jobs.byId(tenantId, jobId);
      if (!j) throw notFound('description job');
      if (!isOpen(j.state)) return j;
      const cancelled = await tx.jobs.cancel(tenantId, jobId);
      if (cancelled.tagIds.length > 0) {
        await tx.tags.markReadyIfWaiting(tenantId, cancelled.tagIds, revision + 1);
        await tx.vocabularies.setRevision(tenantId, current.vocabularyId, revision + 1);
      }
      return cancelled.job;
    });
    return toJobView(job);
  }
}
