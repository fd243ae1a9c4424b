import { performance } from 'node:perf_hooks';
import { ErrorCode, badInput, isAppError } from '../core/errors.ts';
import { isEvictedBankError, type Admission, type InferenceEngine, type LabelBank, type ScoredImage } from '../inference/index.ts';
import type { Logger } from '../core/log.ts';
import type { SnapshotTag, VocabularySnapshot } from '../vocab/index.ts';
import { readImageInput, type ImageInputValue } from './image-input.ts';
import { tagResults, type ResultOptions, type TagResult } from './results.ts';
import type { UrlFetcher } from './url-fetcher.ts';
import type { UsageRecorder } from './usage-recorder.ts';

type DescriptionSourceName = SnapshotTag['descriptionSource'];
/** A snapshot that has something to score. */
type ScorableSnapshot = VocabularySnapshot & { readonly bank: LabelBank };

/** Where compiled vocabularies come from: one consistent revision, NOT_FOUND across tenants. */
export interface VocabularySnapshots {
  forVocabulary(tenantId: string, vocabularyId: string): Promise<VocabularySnapshot>;
}

export interface TagImageOptions {
  threshold?: number | null;
  topK?: number | null;
  minScore?: number | null;
  includeAll?: boolean | null;
  explain?: boolean | null;
  language?: string | null;
}

export interface TagScoreView {
  readonly tagId: string;
  readonly name: string;
  readonly score: number;
  readonly threshold: number;
  readonly passed: boolean;
  readonly descriptionSource: DescriptionSourceName;
  readonly usedFallback: boolean;
  readonly explanation: { text: string | null; source: DescriptionSourceName; weight: number }[] | null;
}

export interface TaggingResultView {
  readonly tags: TagScoreView[];
  readonly scores: TagScoreView[] | null;
  readonly vocabularyId: string;
  readonly revision: number;
  readonly image: { format: string; width: number; height: number };
  readonly timing: { totalMs: number; inferenceMs: number };
}

export type TagImageOutcomeView =
  | { index: number; result: TaggingResultView; error: null }
  | { index: number; result: null; error: { code: string; message: string } };

/** The tenant's image rate and daily quota (RATE_LIMITED, QUOTA_EXCEEDED); every image counts. */
export interface ImageAllowance {
  takeImages(tenantId: string, n: number): Promise<void>;
}

export interface TaggingDeps {
  readonly engine: InferenceEngine;
  readonly vocabularies: VocabularySnapshots;
  readonly usage: UsageRecorder;
  readonly allowance?: ImageAllowance;
  readonly urlFetcher: UrlFetcher | undefined;
  readonly limits: { maxImageBytes: number; maxImagesPerRequest: number };
  readonly log: Logger;
}

/** Attempts to score an image when its vocabulary keeps being evicted before it is scored. */
const EVICTED_RETRIES = 3;

const LANGUAGE = /^[a-z]{2,3}(-[a-z0-9]{2,8})*$/;

/**
 * Tags images for the API: reads each image input, scores it against one consistent revision
 * of a vocabulary, and shapes the result (thresholds, filters, names, explanations).
 */
export class TaggingService {
  constructor(private readonly deps: TaggingDeps) {}

  async tagImages(
    tenantId: string,
    vocabularyId: string,
    images: readonly ImageInputValue[],
    options: TagImageOptions = {},
    signal?: AbortSignal,
  ): Promise<TagImageOutcomeView[]> {
    if (images.length === 0) throw badInput('send at least one image', { field: 'images' });
    if (images.length > this.deps.limits.maxImagesPerRequest) {
      throw badInput(`at most ${this.deps.limits.maxImagesPerRequest} images per request`, { field: 'images' });
    }
    checkOptions(options);
    const started = performance.now();
    await this.deps.allowance?.takeImages(tenantId, images.length);
    // Admission first: a request the engine cannot take is answered OVERLOADED before it holds
    // anything (a database connection, its images' bytes, decoded pixels).
    const admission = this.deps.engine.admit(images.length);
    try {
      const vocab = await this.snapshot(tenantId, vocabularyId);
      const outcomes = await Promise.all(
        images.map((image, index) =>
          this.tagOne(tenantId, vocab, image, options, signal, started, admission).then(
            (result): TagImageOutcomeView => ({ index, result, error: null }),
            (e: unknown): TagImageOutcomeView => {
              if (!isAppError(e) || e.code === ErrorCode.INTERNAL_SERVER_ERROR) {
                this.deps.log.error({ err: e, index }, 'tagging an image failed');
                return { index, result: null, error: { code: ErrorCode.INTERNAL_SERVER_ERROR, message: 'Internal server error' } };
              }
              return { index, result: null, error: { code: e.code, message: e.message } };
            },
          ),
        ),
      );
      this.record(tenantId, vocab, outcomes.map((o) => o.error?.code), performance.now() - started);
      return outcomes;
    } finally {
      admission.release();
    }
  }

  /** One image; errors are thrown as they are (the API's single-image call). */
  async tagImage(tenantId: string, vocabularyId: string, image: ImageInputValue, options: TagImageOptions = {}, signal?: AbortSignal): Promise<TaggingResultView> {
    checkOptions(options);
    const started = performance.now();
    await this.deps.allowance?.takeImages(tenantId, 1);
    const admission = this.deps.engine.admit(1);
    try {
      const vocab = await this.snapshot(tenantId, vocabularyId);
      let failure: string | undefined = ErrorCode.INTERNAL_SERVER_ERROR;
      try {
        const result = await this.tagOne(tenantId, vocab, image, options, signal, started, admission);
        failure = undefined;
        return result;
      } catch (e) {
        if (isAppError(e)) failure = e.code;
        throw e;
      } finally {
        this.record(tenantId, vocab, [failure], performance.now() - started);
      }
    } finally {
      admission.release();
    }
  }

  private async snapshot(tenantId: string, vocabularyId: string): Promise<ScorableSnapshot> {
    const snapshot = await this.deps.vocabularies.forVocabulary(tenantId, vocabularyId);
    if (!snapshot.bank || snapshot.bank.tagCount === 0) {
      throw badInput('the vocabulary has no enabled tag with descriptions to score', { field: 'vocabularyId' });
    }
    return snapshot as ScorableSnapshot;
  }

  private async tagOne(
    tenantId: string,
    fetched: ScorableSnapshot,
    image: ImageInputValue,
    options: TagImageOptions,
    signal: AbortSignal | undefined,
    started: number,
    admission: Admission,
  ): Promise<TaggingResultView> {
    let vocab = fetched;
    const bytes = await readImageInput(image, { maxBytes: this.deps.limits.maxImageBytes }, this.deps.urlFetcher, signal);
    const score = (bank: LabelBank) =>
      this.deps.engine.scoreImages([bytes], [bank], { fairnessKey: tenantId, admission, explain: !!options.explain, ...(signal ? { signal } : {}) });
    let scored: ScoredImage | undefined;
    for (let attempt = 1; !scored; attempt++) {
      try {
        [scored] = await score(vocab.bank);
      } catch (e) {
        // evicted between fetching and scoring (memory is reused at once): fetch it again
        if (!isEvictedBankError(e) || attempt >= EVICTED_RETRIES) throw e;
        vocab = await this.snapshot(tenantId, vocab.vocabularyId);
      }
    }
    const { scores, source, timings } = scored;
    const shared: ResultOptions = { threshold: options.threshold ?? undefined, language: options.language ?? undefined, explain: !!options.explain };
    return {
      tags: tagResults(scores[0]!, vocab.tags, { ...shared, passedOnly: true, minScore: options.minScore ?? undefined, topK: options.topK ?? undefined }).map(view),
      scores: options.includeAll ? tagResults(scores[0]!, vocab.tags, shared).map(view) : null,
      vocabularyId: vocab.vocabularyId,
      revision: vocab.revision,
      // bytes were given, so the engine says what they were
      image: { format: source!.format, width: source!.width, height: source!.height },
      timing: { totalMs: performance.now() - started, inferenceMs: timings.inferenceMs },
    };
  }

  /** One usage record per request; `failures`: each image's error code, undefined for those tagged. */
  private record(tenantId: string, vocab: ScorableSnapshot, failures: readonly (string | undefined)[], durationMs: number): void {
    const errorCodes: Record<string, number> = {};
    for (const code of failures) if (code) errorCodes[code] = (errorCodes[code] ?? 0) + 1;
    const failedCount = failures.filter(Boolean).length;
    this.deps.usage.record({
      tenantId,
      vocabularyId: vocab.vocabularyId,
      revision: vocab.revision,
      imageCount: failures.length,
      failedCount,
      tagsScored: (failures.length - failedCount) * vocab.bank.tagCount,
      errorCodes: failedCount ? errorCodes : undefined,
      durationMs,
    });
  }
}

/** A shaped result as the API shows it: with the tag's id and where its descriptions came from. */
function view(r: TagResult<SnapshotTag>): TagScoreView {
  return {
    tagId: r.tag.id,
    name: r.name,
    score: r.probability,
    threshold: r.threshold,
    passed: r.passed,
    descriptionSource: r.tag.descriptionSource,
    usedFallback: r.tag.usedFallback,
    explanation:
      r.explanation?.map((d) => ({
        text: d.description?.text ?? null,
        source: d.description?.source ?? r.tag.descriptionSource,
        weight: d.weight,
      })) ?? null,
  };
}

function checkOptions(o: TagImageOptions): void {
  const fraction = (v: number | null | undefined, field: string, open: boolean) => {
    if (v == null) return;
    if (!Number.isFinite(v) || (open ? v <= 0 || v >= 1 : v < 0 || v > 1)) {
      throw badInput(`${field} must be between 0 and 1${open ? ' (exclusive)' : ''}`, { field });
    }
  };
  fraction(o.threshold, 'threshold', true);
  fraction(o.minScore, 'minScore', false);
  if (o.topK != null && (!Number.isInteger(o.topK) || o.topK < 0 || o.topK > 100_000)) throw badInput('topK must be a whole number ≥ 0', { field: 'topK' });
  if (o.language != null && !LANGUAGE.test(o.language.toLowerCase())) throw badInput('language must be a language tag such as en, zh or pt-br', { field: 'language' });
}
