import type { DescriptionJob, JobState } from '../../generated/prisma/client.ts';
import { ErrorCode, badInput, isAppError, notFound } from '../../core/errors.ts';
import { pageById, type Page } from '../../core/paging.ts';
import type { VocabContext } from '../context.ts';
import { sha256Hex } from '../banks/embedding-cache.ts';
import { GenerationError, type DescriptionGenerator, type GeneratedDescription } from './generators.ts';
import { isUuid } from '../use-cases/names.ts';
import { chunks, checkTenant, createManyInChunks, finishJobsIfDone, inTransaction, insertDescriptions, lockVocabulary, run, setRevision } from '../repository/store.ts';
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

export interface DescriptionJobItemView {
  id: string;
  tagId: string;
  tagName: string;
  state: 'PENDING' | 'GENERATING' | 'READY' | 'FAILED';
  attempts: number;
  error: string | null;
  updatedAt: Date;
}

export function toJobView(j: DescriptionJob): DescriptionJobView {
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
    const wanted = options.generator ?? 'auto';
    if (wanted === 'llm' && !this.ctx.llm) throw badInput('no LLM is configured (OMNITAG_LLM_BASE_URL); use the template generator', { field: 'generator' });
    const generator: DescriptionGenerator = wanted === 'template' ? this.ctx.template : (this.ctx.llm ?? this.ctx.template);
    const max = generator.kind === 'template' ? Math.min(MAX_TEMPLATE_DESCRIPTIONS, this.ctx.settings.maxDescriptionsPerTag) : this.ctx.settings.maxDescriptionsPerTag;
    const count = options.count ?? Math.min(this.ctx.settings.descriptionsPerTag, max);
    if (!Number.isInteger(count) || count < 1 || count > max) throw badInput(`count must be between 1 and ${max}`, { field: 'count' });
    const tagIds = options.tagIds ? [...new Set(options.tagIds)] : undefined;
    if (tagIds && tagIds.some((id) => !isUuid(id))) throw notFound('tag');

    const result = await inTransaction(this.ctx.prisma, async (tx) => {
      const revision = await lockVocabulary(tx, tenantId, vocabularyId);
      const tags = await tx.tag.findMany({
        where: { tenantId, vocabularyId, ...(tagIds ? { id: { in: tagIds } } : {}) },
        select: { id: true },
      });
      if (tagIds && tags.length !== tagIds.length) throw notFound('tag');
      const ids = tags.map((t) => t.id);
      const busy = new Set<string>();
      for (const part of chunks(ids, 5000)) {
        const active = await tx.descriptionJobItem.findMany({
          where: { tenantId, tagId: { in: part }, state: { in: ['PENDING', 'GENERATING'] }, job: { state: { in: ['QUEUED', 'RUNNING'] } } },
          select: { tagId: true },
        });
        active.forEach((a) => busy.add(a.tagId));
      }
      const targets = ids.filter((id) => !busy.has(id));
      const now = new Date();
      const job = await tx.descriptionJob.create({
        data: {
          tenantId,
          vocabularyId,
          generator: generator.kind,
          model: generator.kind === 'llm' ? generator.name.slice('llm:'.length) : null,
          descriptionsPerTag: count,
          total: targets.length,
          state: targets.length ? 'QUEUED' : 'SUCCEEDED',
          finishedAt: targets.length ? null : now,
        },
      });
      if (targets.length > 0) {
        await createManyInChunks(targets, 5000, (part) =>
          tx.descriptionJobItem.createMany({ data: part.map((tagId) => ({ tenantId, jobId: job.id, tagId, runAfter: now })) }),
        );
        for (const part of chunks(targets, 5000)) {
          await tx.tag.updateMany({ where: { tenantId, id: { in: part } }, data: { descriptionState: 'PENDING', descriptionError: null, revision: revision + 1 } });
        }
        await setRevision(tx, vocabularyId, revision + 1);
      }
      return { job: toJobView(job), alreadyQueued: [...busy] };
    });
    if (result.job.total > 0) {
      this.ctx.nudgeWorker();
    }
    return result;
  }

  async get(tenantId: string, jobId: string): Promise<DescriptionJobView> {
    checkTenant(tenantId);
    if (!isUuid(jobId)) throw notFound('description job');
    const job = await run(this.ctx.prisma.descriptionJob.findFirst({ where: { id: jobId, tenantId } }));
    if (!job) throw notFound('description job');
    return toJobView(job);
  }

  /** Newest first; optionally of one vocabulary. */
  async list(tenantId: string, options: { vocabularyId?: string | null; first: number; after?: string | null }): Promise<Page<DescriptionJobView>> {
    checkTenant(tenantId);
    if (options.vocabularyId && !isUuid(options.vocabularyId)) throw notFound('vocabulary');
    const where = { tenantId, ...(options.vocabularyId ? { vocabularyId: options.vocabularyId } : {}) };
    const { prisma } = this.ctx;
    return run(
      pageById(
        options,
        {
          exists: (id) => prisma.descriptionJob.findFirst({ where: { ...where, id }, select: { id: true } }),
          rows: (window) => prisma.descriptionJob.findMany({ where, orderBy: [{ createdAt: 'desc' }, { id: 'desc' }], ...window }),
          count: () => prisma.descriptionJob.count({ where }),
        },
        (rows) => rows.map(toJobView),
      ),
    );
  }

  /** Per-tag status of a job, by tag name. */
  async items(
    tenantId: string,
    jobId: string,
    options: { first: number; after?: string | null; state?: DescriptionJobItemView['state'] | null },
  ): Promise<Page<DescriptionJobItemView>> {
    await this.get(tenantId, jobId);
    const where = { tenantId, jobId, ...(options.state ? { state: options.state } : {}) };
    const { prisma } = this.ctx;
    return run(
      pageById(
        options,
        {
          exists: (id) => prisma.descriptionJobItem.findFirst({ where: { ...where, id }, select: { id: true } }),
          rows: (window) =>
            prisma.descriptionJobItem.findMany({ where, include: { tag: { select: { name: true, key: true } } }, orderBy: [{ tag: { key: 'asc' } }, { id: 'asc' }], ...window }),
          count: () => prisma.descriptionJobItem.count({ where }),
        },
        (rows) =>
          rows.map((r) => ({ id: r.id, tagId: r.tagId, tagName: r.tag.name, state: r.state, attempts: r.attempts, error: r.error, updatedAt: r.updatedAt })),
      ),
    );
  }

  /**
   * Cancels an unfinished job: its waiting items fail with "cancelled" and their tags go back
   * to READY with the descriptions they have. Work in flight is discarded when it finishes.
   */
  async cancel(tenantId: string, jobId: string): Promise<DescriptionJobView> {
    const current = await this.get(tenantId, jobId);
    if (current.state !== 'QUEUED' && current.state !== 'RUNNING') return current;
    const job = await inTransaction(this.ctx.prisma, async (tx) => {
      const revision = await lockVocabulary(tx, tenantId, current.vocabularyId);
      const j = await tx.descriptionJob.findFirst({ where: { id: jobId, tenantId } });
      if (!j) throw notFound('description job');
      if (j.state !== 'QUEUED' && j.state !== 'RUNNING') return j;
      const open = await tx.descriptionJobItem.findMany({ where: { jobId, tenantId, state: { in: ['PENDING', 'GENERATING'] } }, select: { tagId: true } });
      await tx.descriptionJobItem.updateMany({
        where: { jobId, tenantId, state: { in: ['PENDING', 'GENERATING'] } },
        data: { state: 'FAILED', error: 'cancelled', claimToken: null, leaseExpiresAt: null },
      });
      if (open.length > 0) {
        await tx.tag.updateMany({
          where: { tenantId, id: { in: open.map((o) => o.tagId) }, descriptionState: { in: ['PENDING', 'GENERATING'] } },
          data: { descriptionState: 'READY', descriptionError: null, revision: revision + 1 },
        });
        await setRevision(tx, current.vocabularyId, revision + 1);
      }
      return tx.descriptionJob.update({ where: { id: jobId }, data: { state: 'CANCELLED', finishedAt: new Date(), failed: { increment: open.length } } });
    });
    return toJobView(job);
  }
}

// ---------------------------------------------------------------------------------------------
// The worker

export interface DescriptionWorkerOptions {
  /** Items processed at once by this process. Default 2. */
  concurrency?: number;
  /** How often an idle worker looks for work (other replicas' jobs, retries that came due). Default 1 s. */
  pollIntervalMs?: number;
  /** A claim lasts this long unless renewed; a dead worker's items are claimable after it. Default 60 s. */
  leaseMs?: number;
  /** Attempts per item before it fails for good (retryable errors only). Default 5. */
  maxAttempts?: number;
  /** First retry delay of an item (doubled per attempt) when the error gives none. Default 5 s. */
  retryBaseMs?: number;
  /** Longest retry delay. Default 10 min. */
  retryMaxMs?: number;
}

interface Claim {
  id: string;
  tenantId: string;
  jobId: string;
  tagId: string;
  token: string;
  attempts: number;
}

class LostClaim extends Error {}

/**
 * Runs description jobs. Items are claimed with one `UPDATE … FOR UPDATE SKIP LOCKED` on
 * `description_job_items`, so any number of replicas share the work without a broker. A claim
 * is a lease (renewed while the item runs) plus a token; an item whose lease ran out (its
 * worker died) is claimed again, and every write of a result must present the current token,
 * so a late worker can never write twice. Results are written in one transaction that replaces
 * the tag's generated descriptions, which makes re-running an item harmless.
 */
export class DescriptionWorker {
  private readonly options: Required<DescriptionWorkerOptions>;
  private running = false;
  private loopDone: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private readonly active = new Map<string, { claim: Claim; abort: AbortController; done: Promise<void> }>();
  /** 'silent': a simulated crash (nothing more is written); 'zombie': writes are still attempted. */
  private abandoned: false | 'silent' | 'zombie' = false;
  private readonly counters = { claimed: 0, succeeded: 0, failed: 0, retried: 0, lost: 0 };

  constructor(
    private readonly ctx: VocabContext,
    options: DescriptionWorkerOptions = {},
  ) {
    this.options = {
      concurrency: 2,
      pollIntervalMs: 1000,
      leaseMs: 60_000,
      maxAttempts: 5,
      retryBaseMs: 5000,
      retryMaxMs: 600_000,
      ...options,
    };
  }

  stats() {
    return { ...this.counters, active: this.active.size, running: this.running };
  }

  start(): void {
    if (this.running || this.abandoned) return;
    this.running = true;
    this.loopDone = this.loop();
  }

  /** New work was queued: look now instead of at the next poll. */
  nudge(): void {
    this.wake?.();
  }

  /**
   * Stops claiming, cancels the items in flight and hands them back (PENDING, attempt not
   * counted) so another worker takes them at once. Waits for that to finish.
   */
  async stop(): Promise<void> {
    this.running = false;
    this.wake?.();
    for (const a of this.active.values()) a.abort.abort();
    await this.loopDone;
    await Promise.allSettled([...this.active.values()].map((a) => a.done));
  }

  /**
   * Simulates a crash (for tests): stops at once without releasing claims or renewing leases.
   * With `zombie`, work in flight still tries to write its result when it finishes, as a
   * worker that was only paused would; the claim tokens must refuse it.
   */
  abandon(options: { zombie?: boolean } = {}): void {
    this.abandoned = options.zombie ? 'zombie' : 'silent';
    this.running = false;
    this.wake?.();
    if (!options.zombie) for (const a of this.active.values()) a.abort.abort();
  }

  private async loop(): Promise<void> {
    while (this.running) {
      const free = this.options.concurrency - this.active.size;
      let claimedAll = false;
      if (free > 0) {
        try {
          const claims = await this.claim(free);
          claims.forEach((c) => void this.track(c));
          claimedAll = claims.length === free && claims.length > 0;
        } catch (err) {
          this.ctx.log.warn({ err }, 'description worker could not claim work');
        }
      }
      if (!this.running) break;
      if (claimedAll && this.active.size < this.options.concurrency) continue;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, this.options.pollIntervalMs);
        function done() {
          clearTimeout(timer);
          resolve();
        }
        this.wake = done;
      });
      this.wake = undefined;
    }
  }

  private track(claim: Claim): Promise<void> {
    const abort = new AbortController();
    const done = this.process(claim, abort.signal)
      .catch((err) => this.ctx.log.error({ err, item: claim.id }, 'description item failed unexpectedly'))
      .finally(() => {
        this.active.delete(claim.id);
        this.wake?.(); // a slot is free
      });
    this.active.set(claim.id, { claim, abort, done });
    return done;
  }

  private async claim(limit: number): Promise<Claim[]> {
    if (limit <= 0) return [];
    const { rows } = await this.ctx.pool.query<{ id: string; tenant_id: string; job_id: string; tag_id: string; claim_token: string; attempts: number }>(
      `WITH picked AS (
         SELECT i.id FROM description_job_items i
           JOIN description_jobs j ON j.id = i.job_id
          WHERE j.state IN ('QUEUED', 'RUNNING')
            AND ((i.state = 'PENDING' AND i.run_after <= now())
              OR (i.state = 'GENERATING' AND i.lease_expires_at < now()))
          ORDER BY i.run_after, i.id
          LIMIT $1
          FOR UPDATE OF i SKIP LOCKED)
       UPDATE description_job_items i
          SET state = 'GENERATING', claim_token = gen_random_uuid(), attempts = i.attempts + 1,
              lease_expires_at = now() + make_interval(secs => $2::float8 / 1000), updated_at = now()
         FROM picked WHERE i.id = picked.id
       RETURNING i.id, i.tenant_id, i.job_id, i.tag_id, i.claim_token, i.attempts`,
      [limit, this.options.leaseMs],
    );
    if (rows.length === 0) return [];
    this.counters.claimed += rows.length;
    await this.ctx.pool.query(`UPDATE description_jobs SET state = 'RUNNING', updated_at = now() WHERE id = ANY($1::uuid[]) AND state = 'QUEUED'`, [
      [...new Set(rows.map((r) => r.job_id))],
    ]);
    await this.ctx.pool.query(`UPDATE tags SET description_state = 'GENERATING' WHERE id = ANY($1::uuid[]) AND description_state = 'PENDING'`, [
      rows.map((r) => r.tag_id),
    ]);
    return rows.map((r) => ({ id: r.id, tenantId: r.tenant_id, jobId: r.job_id, tagId: r.tag_id, token: r.claim_token, attempts: r.attempts }));
  }

  private async process(claim: Claim, signal: AbortSignal): Promise<void> {
    const lost = new AbortController();
    const both = AbortSignal.any([signal, lost.signal]);
    const heartbeat = setInterval(() => {
      if (this.abandoned) return clearInterval(heartbeat);
      this.renew(claim).then(
        (held) => {
          if (!held) lost.abort();
        },
        (err) => this.ctx.log.warn({ err, item: claim.id }, 'could not renew a description lease'),
      );
    }, Math.max(50, Math.floor(this.options.leaseMs / 3)));
    try {
      const { rows } = await this.ctx.pool.query<{ name: string; vocabulary_id: string; generator: string; per_tag: number }>(
        `SELECT t.name, t.vocabulary_id, j.generator, j.descriptions_per_tag AS per_tag
           FROM description_job_items i
           JOIN tags t ON t.id = i.tag_id AND t.tenant_id = i.tenant_id
           JOIN description_jobs j ON j.id = i.job_id AND j.tenant_id = i.tenant_id
          WHERE i.id = $1 AND i.claim_token = $2 AND i.state = 'GENERATING'`,
        [claim.id, claim.token],
      );
      const item = rows[0];
      if (!item) throw new LostClaim();
      const generator = item.generator === 'llm' ? this.ctx.llm : this.ctx.template;
      if (!generator) throw new GenerationError('the job asked for an LLM but none is configured now');
      const generated = await generator.generate(item.name, item.per_tag, { signal: both });
      // Embed now (through the cache) so the next compile of the vocabulary finds them ready.
      await this.ctx.embeddings.embed(
        generated.descriptions.map((d) => d.text),
        { signal: both },
      );
      await this.complete(claim, item.vocabulary_id, item.name, generated.descriptions);
    } catch (e) {
      await this.failed(claim, e);
    } finally {
      clearInterval(heartbeat);
    }
  }

  private async renew(claim: Claim): Promise<boolean> {
    const r = await this.ctx.pool.query(
      `UPDATE description_job_items SET lease_expires_at = now() + make_interval(secs => $3::float8 / 1000), updated_at = now()
        WHERE id = $1 AND claim_token = $2 AND state = 'GENERATING'`,
      [claim.id, claim.token, this.options.leaseMs],
    );
    return r.rowCount === 1;
  }

  private checkAlive(): void {
    if (this.abandoned === 'silent') throw new LostClaim();
  }

  /** Writes a tag's new descriptions, if the claim still holds. */
  private async complete(claim: Claim, vocabularyId: string, nameUsed: string, descriptions: GeneratedDescription[]): Promise<void> {
    this.checkAlive();
    const { tenantId, tagId } = claim;
    const outcome = await inTransaction(this.ctx.prisma, async (tx) => {
      const revision = await lockVocabulary(tx, tenantId, vocabularyId);
      const next = revision + 1;
      const owned = await tx.$executeRaw`
        UPDATE description_job_items SET state = 'READY', claim_token = NULL, lease_expires_at = NULL, error = NULL, updated_at = now()
         WHERE id = ${claim.id}::uuid AND claim_token = ${claim.token}::uuid AND state = 'GENERATING'`;
      if (owned !== 1) throw new LostClaim();
      const tag = await tx.tag.findFirst({ where: { id: tagId, tenantId }, select: { name: true, builtinIndex: true } });
      if (!tag) throw new LostClaim();
      if (tag.name !== nameUsed) {
        // renamed while generating: describe the new name instead
        await tx.descriptionJobItem.update({ where: { id: claim.id }, data: { state: 'PENDING', runAfter: new Date(), attempts: { decrement: 1 } } });
        await tx.tag.update({ where: { id: tagId }, data: { descriptionState: 'PENDING' } });
        return 'renamed' as const;
      }
      await tx.tagDescription.deleteMany({ where: { tagId, tenantId, source: { in: ['LLM', 'TEMPLATE'] } } });
      await insertDescriptions(
        tx,
        descriptions.map((d, position) => ({
          tenantId,
          tagId,
          text: d.text,
          textHash: sha256Hex(d.text),
          source: d.source,
          position,
          generatorModel: d.model ?? null,
          generatorPrompt: d.prompt ?? null,
        })),
      );
      await tx.tag.update({
        where: { id: tagId },
        data: { descriptionState: 'READY', descriptionError: null, revision: next, ...(tag.builtinIndex !== null ? { useBuiltinDescriptions: false } : {}) },
      });
      await tx.$executeRaw`UPDATE description_jobs SET succeeded = succeeded + 1, updated_at = now() WHERE id = ${claim.jobId}::uuid`;
      await finishJobsIfDone(tx, [claim.jobId]);
      await setRevision(tx, vocabularyId, next);
      return 'done' as const;
    }).catch((e) => {
      if (e instanceof LostClaim || (isAppError(e) && e.code === ErrorCode.NOT_FOUND)) return 'lost' as const;
      throw e;
    });
    if (outcome === 'lost') {
      this.counters.lost++;
      return;
    }
    if (outcome === 'done') this.counters.succeeded++;
  }

  /** Retries later (retryable errors, attempts left), hands back (stopping), or fails the item. */
  private async failed(claim: Claim, e: unknown): Promise<void> {
    if (e instanceof LostClaim) {
      this.counters.lost++;
      return;
    }
    if (this.abandoned === 'silent') return;
    const stopping = !this.running && !this.abandoned && isCancel(e);
    const message = e instanceof Error ? e.message : String(e);
    const retryable = stopping || isRetryable(e);
    if (retryable && (stopping || claim.attempts < this.options.maxAttempts)) {
      const hinted = isAppError(e) ? (e.details.retryAfterMs as number | undefined) : undefined;
      const delay = stopping ? 0 : Math.min(this.options.retryMaxMs, hinted ?? this.options.retryBaseMs * 2 ** (claim.attempts - 1));
      const handedBack = await this.ctx.pool
        .query(
          `UPDATE description_job_items
              SET state = 'PENDING', claim_token = NULL, lease_expires_at = NULL, error = $3,
                  attempts = attempts - $4::int, run_after = now() + make_interval(secs => $5::float8 / 1000), updated_at = now()
            WHERE id = $1 AND claim_token = $2 AND state = 'GENERATING'`,
          [claim.id, claim.token, stopping ? null : message, stopping ? 1 : 0, delay],
        )
        .then((r) => r.rowCount === 1)
        .catch((err) => {
          this.ctx.log.warn({ err, item: claim.id }, 'could not hand a description item back');
          return true; // its lease runs out and another worker takes it
        });
      if (!handedBack) {
        this.counters.lost++; // claimed again by another worker, cancelled or removed meanwhile
        return;
      }
      if (!stopping) {
        this.counters.retried++;
        this.ctx.log.info({ item: claim.id, attempt: claim.attempts, delay, reason: message }, 'description item will be retried');
      }
      return;
    }
    this.ctx.log.warn({ item: claim.id, tag: claim.tagId, reason: message }, 'description generation failed');
    const outcome = await inTransaction(this.ctx.prisma, async (tx) => {
      const vocab = await tx.tag.findFirst({ where: { id: claim.tagId, tenantId: claim.tenantId }, select: { vocabularyId: true } });
      if (!vocab) throw new LostClaim();
      const revision = await lockVocabulary(tx, claim.tenantId, vocab.vocabularyId);
      const owned = await tx.$executeRaw`
        UPDATE description_job_items SET state = 'FAILED', claim_token = NULL, lease_expires_at = NULL, error = ${message}, updated_at = now()
         WHERE id = ${claim.id}::uuid AND claim_token = ${claim.token}::uuid AND state = 'GENERATING'`;
      if (owned !== 1) throw new LostClaim();
      await tx.tag.update({ where: { id: claim.tagId }, data: { descriptionState: 'FAILED', descriptionError: message, revision: revision + 1 } });
      await tx.$executeRaw`UPDATE description_jobs SET failed = failed + 1, updated_at = now() WHERE id = ${claim.jobId}::uuid`;
      await finishJobsIfDone(tx, [claim.jobId]);
      await setRevision(tx, vocab.vocabularyId, revision + 1);
      return vocab.vocabularyId;
    }).catch((err) => {
      if (!(err instanceof LostClaim || (isAppError(err) && err.code === ErrorCode.NOT_FOUND))) {
        this.ctx.log.warn({ err, item: claim.id }, 'could not record a failed description item');
      }
      return undefined;
    });
    if (outcome) this.counters.failed++;
  }
}

function isCancel(e: unknown): boolean {
  return (isAppError(e) && e.code === ErrorCode.CANCELLED) || (e instanceof Error && e.name === 'AbortError');
}

/** LLM outages and rate limits, busy engines and databases pass; refusals and rejections do not. */
function isRetryable(e: unknown): boolean {
  if (e instanceof GenerationError) return false;
  if (!isAppError(e)) return true;
  switch (e.code) {
    case ErrorCode.LLM_RATE_LIMITED:
    case ErrorCode.OVERLOADED:
    case ErrorCode.MODEL_UNAVAILABLE:
    case ErrorCode.DATABASE_UNAVAILABLE:
    case ErrorCode.CANCELLED:
      return true;
    case ErrorCode.LLM_UNAVAILABLE:
      return e.details.retryable !== false;
    default:
      return false;
  }
}
