import { performance } from 'node:perf_hooks';
import { ErrorCode, badInput, isAppError } from '../core/errors.ts';
import { isEvictedBankError, type Admission, type ImageEmbeddings, type ImageSource, type InferenceEngine, type LabelBank, type TagHeatmap } from '../inference/index.ts';
import { checkOverlaySize, OVERLAY_SIZE, pngDataUrl, renderHeatmapOverlay, type OverlayBudget } from './heatmap-overlay.ts';
import type { Logger } from '../core/log.ts';
import type { SnapshotTag, VocabularySnapshot } from '../vocab/index.ts';
import { readImageInput, type ImageInputValue } from './image-input.ts';
import { tagResults, type ResultOptions, type TagResult } from './results.ts';
import type { UrlFetcher } from './url-fetcher.ts';
import type { UsageRecorder } from './usage-recorder.ts';
import type { ImageLibrary, ImageRow, StoreTicket } from '../library/index.ts';

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
  /** Keep the image in the tenant's library (its encoding, facts, thumbnail and these results). */
  store?: boolean | null;
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
  /** Heat map of a returned tag, when the request selected one (see `TaggingWants`). */
  readonly explain: TagExplanationView | null;
}

/** A returned tag's heat map, and the image bytes when an overlay may be drawn from them. */
export interface TagExplanationView {
  readonly heatmap: TagHeatmap;
  readonly image: Uint8Array | null;
}

/**
 * What the caller will read of a result beyond the options (the API derives it from the
 * query's selection): heat maps cost one more decoder pass, so they are made only when read.
 */
export interface TaggingWants {
  /** Heat maps of the returned tags. */
  heatmaps?: boolean;
  /** Overlays drawn from them: the image bytes are kept with the result. */
  overlays?: boolean;
}

export interface TaggingResultView {
  readonly tags: TagScoreView[];
  readonly scores: TagScoreView[] | null;
  readonly vocabularyId: string;
  readonly revision: number;
  readonly image: { format: string; width: number; height: number };
  readonly timing: { totalMs: number; inferenceMs: number };
  /** The stored image (`store: true`): `created` false when it was already stored (a duplicate). */
  readonly stored: { image: ImageRow; created: boolean } | null;
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
  /** The image library, for `store: true` (absent: storing is refused). */
  readonly library?: ImageLibrary | undefined;
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
    wants: TaggingWants = {},
  ): Promise<TagImageOutcomeView[]> {
    if (images.length === 0) throw badInput('send at least one image', { field: 'images' });
    if (images.length > this.deps.limits.maxImagesPerRequest) {
      throw badInput(`at most ${this.deps.limits.maxImagesPerRequest} images per request`, { field: 'images' });
    }
    this.checkStore(options, images);
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
          this.tagOne(tenantId, vocab, image, options, signal, started, admission, wants).then(
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
      this.record(tenantId, vocab, outcomes.map((o) => o.error?.code), performance.now() - started, outcomes.filter((o) => o.result?.stored?.created).length);
      return outcomes;
    } finally {
      admission.release();
    }
  }

  /** One image; errors are thrown as they are (the API's single-image call). */
  async tagImage(
    tenantId: string,
    vocabularyId: string,
    image: ImageInputValue,
    options: TagImageOptions = {},
    signal?: AbortSignal,
    wants: TaggingWants = {},
  ): Promise<TaggingResultView> {
    this.checkStore(options, [image]);
    checkOptions(options);
    const started = performance.now();
    await this.deps.allowance?.takeImages(tenantId, 1);
    const admission = this.deps.engine.admit(1);
    try {
      const vocab = await this.snapshot(tenantId, vocabularyId);
      let failure: string | undefined = ErrorCode.INTERNAL_SERVER_ERROR;
      let stored = 0;
      try {
        const result = await this.tagOne(tenantId, vocab, image, options, signal, started, admission, wants);
        failure = undefined;
        if (result.stored?.created) stored = 1;
        return result;
      } catch (e) {
        if (isAppError(e)) failure = e.code;
        throw e;
      } finally {
        this.record(tenantId, vocab, [failure], performance.now() - started, stored);
      }
    } finally {
      admission.release();
    }
  }

  /** `store` needs the library; `externalId` needs `store`. Checked before anything is taken. */
  private checkStore(options: TagImageOptions, images: readonly ImageInputValue[]): void {
    images.forEach((image, i) => {
      const field = images.length > 1 ? `images[${i}].externalId` : 'image.externalId';
      if (image.externalId != null && !options.store) throw badInput('externalId is kept only with store: true', { field });
      this.deps.library?.checkExternalId(image.externalId, field);
    });
    if (options.store && !this.deps.library) throw badInput('this server keeps no image library', { field: 'options.store' });
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
    wants: TaggingWants,
  ): Promise<TaggingResultView> {
    let vocab = fetched;
    const bytes = await readImageInput(image, { maxBytes: this.deps.limits.maxImageBytes }, this.deps.urlFetcher, signal);
    const library = options.store ? this.deps.library! : undefined;
    // a stored duplicate is scored from its stored encoding: the image encoder does not run
    const ticket: StoreTicket | undefined = await library?.prepare(tenantId, bytes, image.externalId ?? null);
    const run = { fairnessKey: tenantId, admission, ...(signal ? { signal } : {}) };
    const withMaps = !!wants.heatmaps && this.deps.engine.info.heatmaps !== null;
    const shared: ResultOptions = { threshold: options.threshold ?? undefined, language: options.language ?? undefined, explain: !!options.explain };
    // the encoder runs once: a retry after an eviction scores the embeddings again
    let input: Uint8Array | ImageEmbeddings = ticket?.embeddings ?? bytes;
    let source: Pick<ImageSource, 'format' | 'width' | 'height'> | null = ticket?.embeddings ? ticket.existing : null;
    for (let attempt = 1; ; attempt++) {
      try {
        const [scored] = await this.deps.engine.scoreImages([input], [vocab.bank], { ...run, explain: !!options.explain });
        const { scores, timings } = scored!;
        source ??= scored!.source;
        input = scored!.embeddings;
        const returned = tagResults(scores[0]!, vocab.tags, { ...shared, passedOnly: true, minScore: options.minScore ?? undefined, topK: options.topK ?? undefined });
        // maps for the returned tags only: a second, small decoder pass over their rows
        const maps = withMaps ? await this.deps.engine.heatmaps(input, vocab.bank, returned.map((r) => r.index), run) : [];
        const byIndex = new Map(maps.map((m) => [m.tag, { heatmap: m, image: wants.overlays ? bytes : null }]));
        const stored = ticket
          ? await library!.keep(tenantId, ticket, {
              bytes,
              source,
              embeddings: input,
              vocabularyId: vocab.vocabularyId,
              revision: vocab.revision,
              scores: scores[0]!,
              tagIdAt: (i) => vocab.tags.at(i)!.id,
            })
          : null;
        const viewOf = (r: TagResult<SnapshotTag>) => view(r, byIndex.get(r.index) ?? null);
        return {
          tags: returned.map(viewOf),
          scores: options.includeAll ? tagResults(scores[0]!, vocab.tags, shared).map(viewOf) : null,
          vocabularyId: vocab.vocabularyId,
          revision: vocab.revision,
          // bytes were given, so the engine says what they were
          image: { format: source!.format, width: source!.width, height: source!.height },
          timing: { totalMs: performance.now() - started, inferenceMs: timings.inferenceMs },
          stored,
        };
      } catch (e) {
        // evicted between fetching and scoring (memory is reused at once): fetch it again
        if (!isEvictedBankError(e) || attempt >= EVICTED_RETRIES) throw e;
        vocab = await this.snapshot(tenantId, vocab.vocabularyId);
      }
    }
  }

  /** A returned tag's map, combined over the decoder's layers or of one (0-based). */
  heatmap(explain: TagExplanationView, layer?: number | null): { width: number; height: number; values: number[]; cls: number; layer: number | null } {
    const m = explain.heatmap;
    const picked = layer == null ? m : m.layers[layer];
    if (!picked || !Number.isInteger(layer ?? 0)) {
      throw badInput(`layer must be a whole number from 0 to ${m.layers.length - 1}`, { field: 'layer' });
    }
    return { width: m.width, height: m.height, values: Array.from(picked.values), cls: picked.cls, layer: layer ?? null };
  }

  /** The map over a thumbnail of the image: a PNG data URL whose longer side is `size`. */
  async heatmapPng(explain: TagExplanationView, size: number = OVERLAY_SIZE.default, layer?: number | null, budget?: OverlayBudget): Promise<string> {
    checkOverlaySize(size);
    const map = this.heatmap(explain, layer);
    if (!explain.image) throw new Error('heat-map overlay asked of a result made without its image');
    budget?.take();
    return pngDataUrl(await renderHeatmapOverlay(explain.image, map, size));
  }

  /** One usage record per request; `failures`: each image's error code, undefined for those tagged. */
  private record(tenantId: string, vocab: ScorableSnapshot, failures: readonly (string | undefined)[], durationMs: number, storedCount = 0): void {
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
      ...(storedCount ? { storedCount } : {}),
    });
  }
}

/** A shaped result as the API shows it: with the tag's id and where its descriptions came from. */
function view(r: TagResult<SnapshotTag>, explain: TagExplanationView | null): TagScoreView {
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
    explain,
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
