import type { Config } from '../../config.ts';
import { ErrorCode, isAppError } from '../../core/errors.ts';
import { LeasedWorker } from '../../core/leased-worker.ts';
import type { Logger } from '../../core/log.ts';
import type { EmbeddingCache } from '../banks/embedding-cache.ts';
import type { Claim } from '../repository/job-claims.ts';
import type { VocabStore } from '../repository/store.ts';
import type { ClaimedWork } from '../repository/job-claims.ts';
import { GenerationError, llmUsageOf, modelOf, type DescriptionGenerator, type GenerationResult } from './generators.ts';

export type DescriptionWorkerOptions = Config['vocab']['worker'];

export interface DescriptionWorkerDeps {
  store: VocabStore;
  embeddings: EmbeddingCache;
  /** The LLM generator when one is configured. */
  llm: DescriptionGenerator | undefined;
  template: DescriptionGenerator;
  log: Logger;
}

/** The claim no longer holds: another worker took the item, or it was cancelled or removed. */
class LostClaim extends Error {}

/**
 * Runs description jobs. Items are claimed with one `UPDATE … FOR UPDATE SKIP LOCKED` on
 * `description_job_items`, so any number of replicas share the work without a broker. A claim
 * is a lease (renewed every `renewEveryMs` while the item runs) plus a token; an item whose
 * lease ran out (its worker died or stalled) is claimed again, and every write of a result
 * must present the current token, so a late worker can never write twice. Results are written
 * in one transaction that replaces the tag's generated descriptions, which makes re-running an
 * item harmless.
 */
export class DescriptionWorker {
  private readonly loop: LeasedWorker<Claim>;
  private readonly counters = { succeeded: 0, failed: 0, retried: 0, lost: 0, handedBack: 0 };
  /** The LLM model this worker can run jobs of (null: template jobs only). */
  private readonly llmModel: string | null;

  constructor(
    private readonly deps: DescriptionWorkerDeps,
    private readonly options: DescriptionWorkerOptions,
  ) {
    this.llmModel = modelOf(deps.llm);
    const { store } = deps;
    this.loop = new LeasedWorker<Claim>(
      'description worker',
      {
        // Items of jobs this worker can run: template jobs, and LLM jobs of its own model.
        claim: (limit) => store.run((db) => db.claims.claim(limit, options.leaseMs, { llmModel: this.llmModel })),
        renew: (claim) => store.run((db) => db.claims.renew(claim, options.leaseMs)),
        process: (claim, signals) => this.process(claim, signals.any),
      },
      options,
      deps.log,
    );
  }

  stats() {
    const { polls, claimed, active, running } = this.loop.stats();
    return { polls, claimed, ...this.counters, active, running };
  }

  start(): void {
    this.loop.start();
  }

  /** New work was queued: look now instead of at the next poll. */
  nudge(): void {
    this.loop.nudge();
  }

  /**
   * Stops claiming, cancels the items in flight and hands them back (PENDING, attempt not
   * counted) so another worker takes them at once. Waits for that to finish.
   */
  stop(): Promise<void> {
    return this.loop.stop();
  }

  private async process(claim: Claim, both: AbortSignal): Promise<void> {
    const { store } = this.deps;
    try {
      const work = await store.run((db) => db.claims.work(claim));
      if (!work) throw new LostClaim();
      const generator = this.generatorFor(work);
      if (!generator) {
        // The claim query takes only work this worker can do; should one get here anyway, it
        // is another replica's to run, never this one's to fail.
        await this.handBack(claim);
        return;
      }
      const generated = await generator.generate(work.tagName, work.descriptionsPerTag, { signal: both });
      // Embed now (through the cache) so the next compile of the vocabulary finds them ready.
      await this.deps.embeddings.embed(
        generated.descriptions.map((d) => d.text),
        { signal: both },
      );
      await this.complete(claim, work.vocabularyId, work.tagName, generated);
    } catch (e) {
      await this.failed(claim, e);
    }
  }

  private generatorFor(work: ClaimedWork): DescriptionGenerator | undefined {
    if (work.generator === 'template') return this.deps.template;
    return this.deps.llm && (work.model === null || work.model === this.llmModel) ? this.deps.llm : undefined;
  }

  /** Gives an item back untouched (attempt not counted), claimable by others after a poll interval. */
  private async handBack(claim: Claim): Promise<void> {
    this.counters.handedBack++;
    await this.deps.store
      .run((db) => db.claims.release(claim, { error: null, refundAttempt: true, delayMs: this.options.pollIntervalMs }))
      .catch((err) => this.deps.log.warn({ err, item: claim.id }, 'could not hand a description item back'));
  }

  /** Writes a tag's new descriptions, if the claim still holds. */
  private async complete(claim: Claim, vocabularyId: string, nameUsed: string, generated: GenerationResult): Promise<void> {
    const { tenantId, tagId } = claim;
    const { descriptions } = generated;
    const outcome = await this.deps.store
      .edit(tenantId, vocabularyId, async (tx, revision) => {
        const next = revision + 1;
        if (!(await tx.claims.finish(claim, 'READY', null, generated.llm))) throw new LostClaim();
        const tag = await tx.tags.ref(tenantId, tagId);
        if (!tag) throw new LostClaim();
        if (tag.name !== nameUsed) {
          // renamed while generating: describe the new name instead
          await tx.claims.requeue(claim);
          await tx.tags.setState(tenantId, tagId, 'PENDING');
          return 'renamed' as const;
        }
        await tx.descriptions.deleteOfTag(tenantId, tagId, ['LLM', 'TEMPLATE']);
        await tx.descriptions.insertMany(
          descriptions.map((d, position) => ({
            tenantId,
            tagId,
            text: d.text,
            source: d.source,
            position,
            generatorModel: d.model ?? null,
            generatorPrompt: d.prompt ?? null,
          })),
        );
        await tx.tags.stamp(
          tenantId,
          tagId,
          { descriptionState: 'READY', descriptionError: null, ...(tag.builtinIndex !== null ? { useBuiltinDescriptions: false } : {}) },
          next,
        );
        await tx.jobs.countItem(tenantId, claim.jobId, 'succeeded');
        await tx.jobs.finishIfDone(tenantId, [claim.jobId]);
        await tx.vocabularies.setRevision(tenantId, vocabularyId, next);
        return 'done' as const;
      })
      .catch((e) => {
        if (isLost(e)) return 'lost' as const;
        throw e;
      });
    if (outcome === 'lost') this.counters.lost++;
    if (outcome === 'done') this.counters.succeeded++;
  }

  /** Retries later (retryable errors, attempts left), hands back (stopping), or fails the item. */
  private async failed(claim: Claim, e: unknown): Promise<void> {
    const { store, log } = this.deps;
    if (e instanceof LostClaim) {
      this.counters.lost++;
      return;
    }
    const stopping = !this.loop.isRunning && isCancel(e);
    const message = failureText(e);
    if (!isCancel(e) && !isAppError(e) && !(e instanceof GenerationError)) log.error({ err: e, item: claim.id }, 'description item met an unexpected error');
    const retryable = stopping || isRetryable(e);
    if (retryable && (stopping || claim.attempts < this.options.maxAttempts)) {
      // Every retry waits: at least the back-off, longer when the server asked for longer.
      const hinted = isAppError(e) && typeof e.details.retryAfterMs === 'number' ? e.details.retryAfterMs : 0;
      const backoff = this.options.retryBaseMs * 2 ** Math.max(0, claim.attempts - 1);
      const delay = stopping ? 0 : Math.min(this.options.retryMaxMs, Math.max(hinted, backoff));
      const handedBack = await store
        .run((db) => db.claims.release(claim, { error: stopping ? null : message, refundAttempt: stopping, delayMs: delay, llm: llmUsageOf(e) }))
        .catch((err) => {
          log.warn({ err, item: claim.id }, 'could not hand a description item back');
          return true; // its lease runs out and another worker takes it
        });
      if (!handedBack) {
        this.counters.lost++; // claimed again by another worker, cancelled or removed meanwhile
        return;
      }
      if (!stopping) {
        this.counters.retried++;
        log.info({ item: claim.id, attempt: claim.attempts, delay, reason: message }, 'description item will be retried');
      }
      return;
    }
    log.warn({ item: claim.id, tag: claim.tagId, reason: message }, 'description generation failed');
    const { tenantId, tagId } = claim;
    const recorded = await store
      .transaction(async (tx) => {
        const vocabularyId = await tx.tags.vocabularyOf(tenantId, tagId);
        if (!vocabularyId) throw new LostClaim();
        const revision = await tx.vocabularies.lock(tenantId, vocabularyId);
        if (!(await tx.claims.finish(claim, 'FAILED', message, llmUsageOf(e)))) throw new LostClaim();
        await tx.tags.stamp(tenantId, tagId, { descriptionState: 'FAILED', descriptionError: message }, revision + 1);
        await tx.jobs.countItem(tenantId, claim.jobId, 'failed');
        await tx.jobs.finishIfDone(tenantId, [claim.jobId]);
        await tx.vocabularies.setRevision(tenantId, vocabularyId, revision + 1);
        return true;
      })
      .catch((err) => {
        if (!isLost(err)) log.warn({ err, item: claim.id }, 'could not record a failed description item');
        return false;
      });
    if (recorded) this.counters.failed++;
  }
}

/**
 * What an item (and its tag, when it fails for good) records of a failure: an AppError as its
 * code and message ("LLM_RATE_LIMITED: …", as the API promises), a generation that found no
 * usable answer by its reason, anything else only as an internal error (logged in full).
 */
function failureText(e: unknown): string {
  if (isAppError(e)) return `${e.code}: ${e.message}`;
  if (e instanceof GenerationError) return e.message;
  return `${ErrorCode.INTERNAL_SERVER_ERROR}: an unexpected error (see the server log)`;
}

const isLost = (e: unknown) => e instanceof LostClaim || (isAppError(e) && e.code === ErrorCode.NOT_FOUND);

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
