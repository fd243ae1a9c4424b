import { performance } from 'node:perf_hooks';
import { ErrorCode, badInput, isAppError } from '../core/errors.ts';
import type { InferenceEngine } from '../inference/runtime/engine.ts';
import { rankTags, topDescriptions, type RankedTag, type TagScores } from '../inference/scoring/scores.ts';
import type { Logger } from '../core/log.ts';
import type { LabelBank } from '../inference/scoring/label-bank.ts';
import type { SnapshotTag, VocabularySnapshot } from '../vocab/index.ts';
import { readImageInput, type ImageInputValue } from './image-input.ts';
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

export interface TaggingDeps {
  readonly engine: InferenceEngine;
  readonly vocabularies: VocabularySnapshots;
  readonly usage: UsageRecorder;
  readonly urlFetcher: UrlFetcher | undefined;
  readonly limits: { maxImageBytes: number; maxImagesPerRequest: number };
  readonly log: Logger;
}

/** Descriptions shown per tag when a result is explained. */
const EXPLAIN_TOP = 3;
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
    const vocab = await this.snapshot(tenantId, vocabularyId);
    const outcomes = await Promise.all(
      images.map((image, index) =>
        this.tagOne(tenantId, vocab, image, options, signal, started).then(
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
    this.record(tenantId, vocab, outcomes.length, outcomes.filter((o) => o.error).length, performance.now() - started);
    return outcomes;
  }

  /** One image; errors are thrown as they are (the API's single-image call). */
  async tagImage(tenantId: string, vocabularyId: string, image: ImageInputValue, options: TagImageOptions = {}, signal?: AbortSignal): Promise<TaggingResultView> {
    checkOptions(options);
    const started = performance.now();
    const vocab = await this.snapshot(tenantId, vocabularyId);
    let failed = 1;
    try {
      const result = await this.tagOne(tenantId, vocab, image, options, signal, started);
      failed = 0;
      return result;
    } finally {
      this.record(tenantId, vocab, 1, failed, performance.now() - started);
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
    vocab: ScorableSnapshot,
    image: ImageInputValue,
    options: TagImageOptions,
    signal: AbortSignal | undefined,
    started: number,
  ): Promise<TaggingResultView> {
    const bytes = await readImageInput(image, { maxBytes: this.deps.limits.maxImageBytes }, this.deps.urlFetcher, signal);
    const pre = await this.deps.engine.preprocess(bytes);
    const inferenceStart = performance.now();
    const [scored] = await this.deps.engine.scoreImages([{ pixels: pre.pixels }], [vocab.bank], {
      fairnessKey: tenantId,
      explain: !!options.explain,
      ...(signal ? { signal } : {}),
    });
    const inferenceMs = performance.now() - inferenceStart;
    const scores = scored!.scores[0]!;
    const threshold = options.threshold ?? undefined;
    return {
      tags: this.views(vocab, scores, rankTags(scores, { threshold, passedOnly: true, minScore: options.minScore ?? undefined, topK: options.topK ?? undefined }), options),
      scores: options.includeAll ? this.views(vocab, scores, rankTags(scores, { threshold }), options) : null,
      vocabularyId: vocab.vocabularyId,
      revision: vocab.revision,
      image: { format: pre.source.format, width: pre.source.width, height: pre.source.height },
      timing: { totalMs: performance.now() - started, inferenceMs },
    };
  }

  /** Ranked tags (the engine's ranking and thresholds) with names, sources and explanations. */
  private views(vocab: ScorableSnapshot, scores: TagScores, ranked: RankedTag[], options: TagImageOptions): TagScoreView[] {
    const language = options.language?.toLowerCase();
    const explain = options.explain && scores.descriptionWeights;
    return ranked.map((r) => {
      const tag = vocab.tags[r.index]!;
      return {
        tagId: tag.id,
        name: nameIn(tag, language),
        score: r.probability,
        threshold: r.threshold,
        passed: r.passed,
        descriptionSource: tag.descriptionSource,
        usedFallback: tag.usedFallback,
        explanation:
          explain && (r.passed || options.includeAll)
            ? topDescriptions(scores, r.index, EXPLAIN_TOP).map((d) => ({
                text: tag.descriptions[d.description]?.text ?? null,
                source: tag.descriptions[d.description]?.source ?? tag.descriptionSource,
                weight: d.weight,
              }))
            : null,
      };
    });
  }

  private record(tenantId: string, vocab: VocabularySnapshot, imageCount: number, failedCount: number, durationMs: number): void {
    this.deps.usage.record({ tenantId, vocabularyId: vocab.vocabularyId, revision: vocab.revision, imageCount, failedCount, durationMs });
  }
}

function nameIn(tag: SnapshotTag, language: string | undefined): string {
  if (!language || language === 'en') return tag.name;
  return tag.names[language] ?? tag.names[language.split('-')[0]!] ?? tag.name;
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
