import { createHash } from 'node:crypto';
import { AppError, ErrorCode } from '../../core/errors.ts';
import { MicroBatcher, cancelledError, type SubmitOptions } from './batcher.ts';
import { loadBuiltinVocabulary, type BuiltinVocabulary } from '../pack/builtin-vocabulary.ts';
import {
  isImageEmbeddings,
  type Admission,
  type EngineInfo,
  type EngineStats,
  type HeatmapGrid,
  type HeatmapValues,
  type ImageEmbeddings,
  type ImageInput,
  type InferenceEngine,
  type RequestOptions,
  type ScoreOptions,
  type ScoredImage,
  type TagHeatmap,
  type TextEmbeddings,
} from './engine.ts';
import { asSharedSegment, assertValidBank, assertValidSegment, evictedBank, holdSegments, tagEmbeddings, type BankSegment, type LabelBank } from '../scoring/label-bank.ts';
import { openModelPack, type ModelPack } from '../pack/pack.ts';
import { GRAPH_FILES, hasRandomWeights, type PackManifest } from '../pack/manifest.ts';
import type { ImageSource } from '../image/preprocess.ts';
import { IntakePool } from './intake-pool.ts';
import { resolveEngineOptions, type ImagePreprocessor, type LocalEngineOptions } from './engine-options.ts';
import { runPackSelftest, type SelftestReport } from '../pack/selftest.ts';
import { makeTagScores } from '../scoring/scores.ts';
import { decoderChunk, type WarmupPlan } from './model-runner.ts';
import type { Logger } from './sessions.ts';
import { shuttingDown, WorkerPool } from './worker-pool.ts';
import type { JobResult } from './worker-protocol.ts';

type Payload =
  | { kind: 'encode'; pixels: Float32Array }
  | { kind: 'decode'; embeds: Float32Array; segment: BankSegment; explain: boolean }
  | { kind: 'text'; text: string }
  | { kind: 'heatmaps'; embeds: Float32Array; tags: { tagCount: number; maxDescriptions: number; embeds: Float32Array; mask: Uint8Array } };

type UnitResult =
  | { kind: 'encode'; data: Float32Array }
  | { kind: 'decode'; logits: Float32Array; weights?: Float32Array }
  | { kind: 'text'; embedding: Float32Array; truncated: boolean }
  | { kind: 'heatmaps'; attention: Float32Array };

/** An image through the encoder, with what it came from and when its pixels were ready. */
interface EncodedImage {
  embeddings: ImageEmbeddings;
  source: ImageSource | null;
  preprocessMs: number;
  readyAt: number;
}

/** A bank as the engine runs it: its segments in shared memory and which of them any tag points at. */
interface PreparedBank {
  bank: LabelBank;
  /** `bank.segments`, each backed by shared memory. */
  segments: readonly BankSegment[];
  /** The segments to decode (those some tag points at). */
  used: readonly BankSegment[];
  /** Tag i is row i of its only segment: the logits need no gathering. */
  identity: boolean;
}

const ENCODE_GROUP = 'encode';
const TEXT_GROUP = 'text';
/** One unit per request: its tags are its own, so there is nothing to share a run with. */
const HEATMAP_GROUP = 'heatmaps';

export type { ImagePreprocessor, LocalEngineOptions };

/** Opens and validates the pack; workers start on `start()` or the first request. */
export async function createLocalInferenceEngine(options: LocalEngineOptions): Promise<LocalInferenceEngine> {
  const pack = await openModelPack(options.packDir, { verifyChecksums: options.verifyChecksums ?? false });
  return new LocalInferenceEngine(pack, options);
}

export class LocalInferenceEngine implements InferenceEngine {
  private readonly pool: WorkerPool;
  private readonly batcher: MicroBatcher<Payload, UnitResult>;
  private readonly logger: Logger;
  private readonly maxBatch: { encode: number; decode: number; text: number };
  private readonly chunkTags: number;
  private readonly preprocessor: ImagePreprocessor;
  /** Decoding and resizing threads; absent when the caller replaced preprocessing. */
  private readonly intake: IntakePool | undefined;
  private started: Promise<EngineInfo> | undefined;
  private builtin: Promise<BuiltinVocabulary> | undefined;
  private readonly preparedBanks = new WeakMap<LabelBank, PreparedBank>();
  /**
   * Decode batches are grouped by segment object, never by a caller's key: units share a run
   * only when they read the very same rows (every vocabulary on the built-in segment does).
   */
  private readonly segmentIds = new WeakMap<BankSegment, number>();
  private nextSegmentId = 0;
  private disposed = false;
  private currentInfo: EngineInfo;

  constructor(
    private readonly pack: ModelPack,
    options: Omit<LocalEngineOptions, 'packDir'>,
  ) {
    const m = pack.manifest;
    const o = resolveEngineOptions(options);
    const workers = o.workers;
    this.logger = o.logger;
    this.maxBatch = o.maxBatch;
    this.chunkTags = o.decoderChunkTags;
    const { imageLimits, resize } = o;
    if (!o.preprocess) {
      const { size, mean, std } = m.image;
      this.intake = new IntakePool({
        size: o.intakeWorkers,
        init: { spec: { size, mean, std }, limits: imageLimits, options: { resize } },
        logger: this.logger,
        workerUrl: o.intakeWorkerUrl,
      });
    }
    const intake = this.intake;
    this.preprocessor = o.preprocess ?? ((bytes) => intake!.preprocess(bytes));
    this.pool = new WorkerPool({
      size: workers,
      init: {
        packDir: pack.dir,
        settings: { provider: o.provider, cudaDeviceId: o.cudaDeviceId, intraOpThreads: o.intraOpThreads },
        ...(o.warmup ? { warmup: warmupPlan(pack, o.maxBatch, o.decoderChunkTags) } : {}),
      },
      workerUrl: o.workerUrl,
      logger: this.logger,
      shutdownTimeoutMs: o.shutdownTimeoutMs,
    });
    this.batcher = new MicroBatcher<Payload, UnitResult>({
      maxQueue: o.maxQueue,
      maxWaitMs: o.maxWaitMs,
      maxBatch: (group) =>
        group === ENCODE_GROUP ? this.maxBatch.encode : group === TEXT_GROUP ? this.maxBatch.text : group === HEATMAP_GROUP ? 1 : this.maxBatch.decode,
      freeSlots: () => this.pool.idleCount(),
      execute: (group, payloads) => this.execute(group, payloads),
      // decode groups are named per segment: the metric gets their kind only
      onBatch: o.observer && ((group, waited) => o.observer!.batch(group === ENCODE_GROUP ? 'encode' : group === TEXT_GROUP ? 'text' : 'decode', waited)),
    });
    this.pool.onAvailable = () => this.batcher.pump();
    this.currentInfo = Object.freeze({
      packName: m.name,
      precision: m.precision,
      randomWeights: hasRandomWeights(m),
      ...(m.quantization ? { quantization: m.quantization } : {}),
      imageSize: m.image.size,
      imageTokens: m.dims.imageTokens,
      embedDim: m.dims.embedDim,
      textContext: m.dims.textContext,
      builtinTagCount: m.builtin.count,
      builtinDescriptionsPerTag: m.builtin.descriptionsPerTag,
      heatmaps: m.heatmaps ? { height: m.heatmaps.grid[0], width: m.heatmaps.grid[1], layers: m.heatmaps.layers } : null,
      textEncoderId: m.textEncoderId,
      imageEncoderId: imageEncoderId(m),
      provider: 'pending',
      workers,
    });
  }

  get info(): EngineInfo {
    return this.currentInfo;
  }

  start(): Promise<EngineInfo> {
    if (this.disposed) return Promise.reject(shuttingDown());
    this.intake?.start();
    const begun = performance.now();
    this.started ??= this.pool.start().then((provider) => {
      if (provider === 'cpu' && this.pack.manifest.precision === 'fp16') {
        this.logger.warn({ pack: this.pack.manifest.name }, 'an fp16 pack on the CPU is slow; fp16 packs are meant for CUDA');
      }
      this.currentInfo = Object.freeze({
        ...this.currentInfo,
        provider,
        startup: { ms: Math.round(performance.now() - begun), warmupMs: Math.round(this.pool.warmupMs), warmed: this.pool.warmed },
      });
      return this.currentInfo;
    });
    this.started.catch(() => {
      this.started = undefined;
    });
    return this.started;
  }

  admit(units: number): Admission {
    if (this.disposed) throw shuttingDown();
    return this.batcher.admit(units);
  }

  async encodeImages(images: readonly ImageInput[], options: RequestOptions = {}): Promise<ImageEmbeddings[]> {
    return (await this.encode(images, options)).map((e) => e.embeddings);
  }

  async scoreImages(
    images: readonly (ImageInput | ImageEmbeddings)[],
    banks: readonly LabelBank[],
    options: ScoreOptions = {},
  ): Promise<ScoredImage[]> {
    // segments in reusable memory are held from the call until their decodes are done
    const release = holdSegments(banks.flatMap((b) => b.segments));
    if (!release) throw evictedBank();
    try {
      await this.start();
      return await this.scoreHeld(images, banks, options);
    } finally {
      release();
    }
  }

  private async scoreHeld(
    images: readonly (ImageInput | ImageEmbeddings)[],
    banks: readonly LabelBank[],
    options: ScoreOptions,
  ): Promise<ScoredImage[]> {
    const prepared = banks.map((b) => this.checkedBank(b));
    const given = performance.now();
    const encoded: EncodedImage[] = new Array(images.length);
    const toEncode: { img: ImageInput; i: number }[] = [];
    images.forEach((img, i) => {
      if (isImageEmbeddings(img)) encoded[i] = { embeddings: this.checkedEmbeddings(img), source: null, preprocessMs: 0, readyAt: given };
      else toEncode.push({ img, i });
    });
    if (toEncode.length > 0) {
      const fresh = await this.encode(
        toEncode.map((x) => x.img),
        options,
      );
      fresh.forEach((e, k) => (encoded[toEncode[k]!.i] = e));
    }
    const embeddings = encoded.map((e) => e.embeddings);
    const explain = options.explain ?? false;
    // each segment any bank points at is decoded once per image, whichever banks share it
    const decoded = new Map<BankSegment, Promise<UnitResult[]>>();
    for (const p of prepared) {
      for (const segment of p.used) {
        if (decoded.has(segment)) continue;
        const group = `decode:${explain ? 1 : 0}:${this.segmentId(segment)}`;
        decoded.set(
          segment,
          this.inWindows(embeddings, this.maxBatch.decode, options, (part, submitOptions) =>
            this.batcher.submit(
              group,
              part.map((e): Payload => ({ kind: 'decode', embeds: e.data, segment, explain })),
              submitOptions,
            ),
          ),
        );
      }
    }
    const results = new Map(await Promise.all([...decoded].map(async ([segment, r]) => [segment, await r] as const)));
    const done = performance.now();
    return encoded.map((e, i) => ({
      source: e.source,
      embeddings: e.embeddings,
      scores: prepared.map((p) => {
        const perSegment = p.segments.map((s) => results.get(s)?.[i] as Extract<UnitResult, { kind: 'decode' }> | undefined);
        const logits = p.identity ? perSegment[0]!.logits : gatherLogits(p.bank, perSegment);
        return makeTagScores(p.bank, logits, explain ? perSegment.map((r) => r?.weights) : undefined);
      }),
      timings: { preprocessMs: e.preprocessMs, inferenceMs: done - e.readyAt },
    }));
  }

  async heatmaps(image: ImageEmbeddings, bank: LabelBank, tags: readonly number[], options: RequestOptions = {}): Promise<TagHeatmap[]> {
    const grid = this.currentInfo.heatmaps;
    if (!grid) {
      throw new AppError(ErrorCode.BAD_USER_INPUT, `model pack ${this.pack.manifest.name} has no heat-map graph (export it with --heatmaps)`);
    }
    if (tags.length === 0) return [];
    const release = holdSegments(bank.segments);
    if (!release) throw evictedBank();
    let payload: Payload;
    try {
      await this.start();
      const embeddings = this.checkedEmbeddings(image);
      this.checkedBank(bank);
      const bad = tags.find((t) => !Number.isInteger(t) || t < 0 || t >= bank.tagCount);
      if (bad !== undefined) throw new AppError(ErrorCode.BAD_USER_INPUT, `tag index ${bad} is outside the bank (${bank.tagCount} tags)`);
      // only these tags' rows, copied out of the (shared, reusable) segments while they are held
      const E = this.pack.manifest.dims.embedDim;
      const rows = tags.map((t) => tagEmbeddings(bank, t));
      const D = Math.max(...rows.map((r) => r.length / E));
      const embeds = new Float32Array(tags.length * D * E);
      const mask = new Uint8Array(tags.length * D);
      rows.forEach((r, i) => {
        embeds.set(r, i * D * E);
        mask.fill(1, i * D, i * D + r.length / E);
      });
      payload = { kind: 'heatmaps', embeds: embeddings.data, tags: { tagCount: tags.length, maxDescriptions: D, embeds, mask } };
    } finally {
      release();
    }
    const [result] = await this.batcher.submit(HEATMAP_GROUP, [payload], options);
    const { attention } = result as Extract<UnitResult, { kind: 'heatmaps' }>;
    return tags.map((tag, i) => heatmapOf(tag, attention, i, grid, this.pack.manifest.dims.imageTokens));
  }

  async embedTexts(texts: readonly string[], options: RequestOptions = {}): Promise<TextEmbeddings> {
    await this.start();
    const E = this.pack.manifest.dims.embedDim;
    const results = await this.inWindows(texts, this.maxBatch.text, options, (part, submitOptions) =>
      this.batcher.submit(
        TEXT_GROUP,
        part.map((text): Payload => ({ kind: 'text', text })),
        submitOptions,
      ),
    );
    const embeddings = new Float32Array(texts.length * E);
    const truncated = results.map((r, i) => {
      const t = r as Extract<UnitResult, { kind: 'text' }>;
      embeddings.set(t.embedding, i * E);
      return t.truncated;
    });
    return { textEncoderId: this.pack.manifest.textEncoderId, dim: E, embeddings, truncated };
  }

  async countTokens(texts: readonly string[]): Promise<number[]> {
    if (texts.length === 0) return [];
    await this.start();
    // Tokenising is cheap and runs no model: straight to the next free worker, not batched.
    const result = await this.pool.run({ kind: 'count-tokens', texts: [...texts] });
    if (result.kind !== 'count-tokens') {
      throw new AppError(ErrorCode.INTERNAL_SERVER_ERROR, `inference worker answered a count-tokens job with a ${result.kind} result`);
    }
    return result.counts;
  }

  builtinVocabulary(): Promise<BuiltinVocabulary> {
    this.builtin ??= loadBuiltinVocabulary(this.pack);
    this.builtin.catch(() => {
      this.builtin = undefined;
    });
    return this.builtin;
  }

  stats(): EngineStats {
    const b = this.batcher.stats();
    const p = this.pool.stats();
    return {
      queued: b.queued,
      admitted: b.admitted,
      maxQueue: b.maxQueue,
      runningBatches: b.running,
      batches: b.batches,
      batchedUnits: b.batchedUnits,
      rejectedOverloaded: b.overloaded,
      cancelled: b.cancelled,
      workers: { size: p.size, ready: p.ready, busy: p.busy, restarts: p.restarts, crashes: p.crashes },
      runs: p.runs,
      runMs: p.runMs,
      ...(this.intake ? { intake: this.intake.stats() } : {}),
    };
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    this.batcher.close(shuttingDown());
    await Promise.all([this.pool.dispose(), this.intake?.dispose()]);
  }

  /** Replays the pack's `selftest.json` through this engine; null when the pack has none. */
  selftest(): Promise<SelftestReport | null> {
    return runPackSelftest(this, this.pack);
  }

  /** Encodes images in windows, keeping what each came from and when its pixels were ready. */
  private async encode(images: readonly ImageInput[], options: RequestOptions): Promise<EncodedImage[]> {
    await this.start();
    const window = this.maxBatch.encode;
    // refuse before decoding any image when even the first window would not be queued (an
    // admitted request was given its room before it began)
    const refused = options.admission ? null : this.batcher.admissionError(Math.min(images.length, window));
    if (refused) throw refused;
    const facts: Omit<EncodedImage, 'embeddings'>[] = new Array(images.length);
    const indexed = images.map((image, index) => ({ image, index }));
    const results = await this.inWindows(indexed, window, options, async (part, submitOptions) => {
      const payloads = await Promise.all(
        part.map(async ({ image, index }): Promise<Payload> => {
          const { pixels, ...rest } = await this.pixelsOf(image);
          facts[index] = rest;
          return { kind: 'encode', pixels };
        }),
      );
      throwIfAborted(submitOptions.signal);
      return this.batcher.submit(ENCODE_GROUP, payloads, submitOptions);
    });
    const { imageTokens: T, embedDim: E } = this.pack.manifest.dims;
    return results.map((r, i) => ({
      ...facts[i]!,
      embeddings: {
        kind: 'image-embeddings',
        packName: this.pack.manifest.name,
        tokens: T,
        dim: E,
        data: (r as Extract<UnitResult, { kind: 'encode' }>).data,
      },
    }));
  }

  private async pixelsOf(image: ImageInput): Promise<{ pixels: Float32Array } & Omit<EncodedImage, 'embeddings'>> {
    const S = this.pack.manifest.image.size;
    if (!(image instanceof Uint8Array)) {
      if (!(image.pixels instanceof Float32Array) || image.pixels.length !== 3 * S * S) {
        throw new AppError(ErrorCode.BAD_USER_INPUT, `preprocessed pixels must be a Float32Array of 3×${S}×${S}`);
      }
      return { pixels: image.pixels, source: null, preprocessMs: 0, readyAt: performance.now() };
    }
    const started = performance.now();
    const { size, mean, std } = this.pack.manifest.image;
    const { pixels, source } = await this.preprocessor(image, { size, mean, std });
    const readyAt = performance.now();
    return { pixels, source, preprocessMs: readyAt - started, readyAt };
  }

  /** Checks a bank once (its map, and each segment once whatever bank it is in) and remembers what to decode. */
  private checkedBank(bank: LabelBank): PreparedBank {
    let prepared = this.preparedBanks.get(bank);
    if (prepared) return prepared;
    const E = this.pack.manifest.dims.embedDim;
    assertValidBank(bank, E);
    const segments = bank.segments.map((s) => {
      const shared = asSharedSegment(s);
      if (!this.segmentIds.has(shared)) {
        assertValidSegment(shared, E);
        this.segmentIds.set(shared, this.nextSegmentId++);
      }
      return shared;
    });
    const pointedAt = new Uint8Array(segments.length);
    let identity = segments.length === 1 && bank.tagCount === segments[0]!.tagCount;
    for (let c = 0; c < bank.tagCount; c++) {
      pointedAt[bank.segmentOf[c]!] = 1;
      if (bank.rowOf[c] !== c) identity = false;
    }
    prepared = { bank, segments, used: segments.filter((_, k) => pointedAt[k] === 1), identity };
    this.preparedBanks.set(bank, prepared);
    return prepared;
  }

  private segmentId(segment: BankSegment): number {
    return this.segmentIds.get(segment)!;
  }

  private checkedEmbeddings(e: ImageEmbeddings): ImageEmbeddings {
    const { imageTokens: T, embedDim: E } = this.pack.manifest.dims;
    if (e.packName !== this.pack.manifest.name || e.tokens !== T || e.dim !== E || e.data.length !== T * E) {
      throw new AppError(ErrorCode.BAD_USER_INPUT, `image embeddings from pack "${e.packName}" cannot be scored by pack "${this.pack.manifest.name}"`);
    }
    return e;
  }

  /**
   * Submits a long list in windows (at most two in flight), so one large request never holds
   * more than two windows of queue space and still keeps a worker busy between windows.
   */
  private async inWindows<T>(
    items: readonly T[],
    window: number,
    options: RequestOptions,
    submit: (part: T[], submitOptions: SubmitOptions) => Promise<UnitResult[]>,
  ): Promise<UnitResult[]> {
    if (items.length <= window) return submit([...items], options);
    const local = new AbortController();
    const forward = () => local.abort(options.signal?.reason);
    options.signal?.addEventListener('abort', forward, { once: true });
    if (options.signal?.aborted) forward();
    const submitOptions: SubmitOptions = { fairnessKey: options.fairnessKey, signal: local.signal, admission: options.admission };
    const results: UnitResult[] = new Array(items.length);
    const inFlight: Promise<void>[] = [];
    let firstError: unknown;
    try {
      for (let start = 0; start < items.length && firstError === undefined; start += window) {
        if (inFlight.length >= 2) await inFlight.shift();
        if (firstError !== undefined) break;
        const offset = start;
        inFlight.push(
          submit(items.slice(start, start + window), submitOptions).then(
            (r) => r.forEach((x, k) => (results[offset + k] = x)),
            (e: unknown) => {
              // the first failure is the answer; the other windows are cancelled
              firstError ??= e;
              local.abort();
            },
          ),
        );
      }
      await Promise.all(inFlight);
      if (firstError !== undefined) throw firstError;
      return results;
    } finally {
      options.signal?.removeEventListener('abort', forward);
    }
  }

  private async execute(group: string, payloads: Payload[]): Promise<UnitResult[]> {
    const first = payloads[0]!;
    const count = payloads.length;
    let result: JobResult;
    switch (first.kind) {
      case 'encode': {
        const S = this.pack.manifest.image.size;
        const pixels = new Float32Array(count * 3 * S * S);
        payloads.forEach((p, i) => pixels.set((p as typeof first).pixels, i * 3 * S * S));
        result = await this.pool.run({ kind: 'encode', pixels, count }, [pixels.buffer]);
        if (result.kind !== 'encode') break;
        const per = result.imageEmbeds.length / count;
        const all = result.imageEmbeds;
        return payloads.map((_, i) => ({ kind: 'encode', data: all.slice(i * per, (i + 1) * per) }));
      }
      case 'decode': {
        const per = first.embeds.length;
        const imageEmbeds = new Float32Array(count * per);
        payloads.forEach((p, i) => imageEmbeds.set((p as typeof first).embeds, i * per));
        const { key, tagCount, maxDescriptions, embedDim, embeds, mask } = first.segment;
        result = await this.pool.run(
          {
            kind: 'decode',
            imageEmbeds,
            count,
            segment: { key, tagCount, maxDescriptions, embedDim, embeds, mask },
            chunkTags: this.chunkTags,
            explain: first.explain,
          },
          [imageEmbeds.buffer],
        );
        if (result.kind !== 'decode') break;
        const C = tagCount;
        const D = maxDescriptions;
        const { logits, weights } = result;
        return payloads.map((_, i) => ({
          kind: 'decode',
          // Views, not copies: each batch's output arrays are this batch's alone.
          logits: logits.subarray(i * C, (i + 1) * C),
          ...(weights ? { weights: weights.subarray(i * C * D, (i + 1) * C * D) } : {}),
        }));
      }
      case 'heatmaps': {
        const { tagCount, maxDescriptions, embeds, mask } = first.tags;
        const imageEmbeds = first.embeds.slice(); // the caller keeps its embeddings
        const E = this.pack.manifest.dims.embedDim;
        result = await this.pool.run(
          { kind: 'heatmaps', imageEmbeds, tagCount, maxDescriptions, embedDim: E, embeds, mask },
          [imageEmbeds.buffer, embeds.buffer as ArrayBuffer, mask.buffer as ArrayBuffer],
        );
        if (result.kind !== 'heatmaps') break;
        return [{ kind: 'heatmaps', attention: result.attention }];
      }
      case 'text': {
        result = await this.pool.run({ kind: 'texts', texts: payloads.map((p) => (p as typeof first).text) });
        if (result.kind !== 'texts') break;
        const E = this.pack.manifest.dims.embedDim;
        const { embeddings, truncated } = result;
        return payloads.map((_, i) => ({ kind: 'text', embedding: embeddings.subarray(i * E, (i + 1) * E), truncated: truncated[i]! }));
      }
    }
    throw new AppError(ErrorCode.INTERNAL_SERVER_ERROR, `inference worker answered a ${group} job with a ${result.kind} result`);
  }
}

/**
 * The shapes requests will run most: image batches of one and of the largest size (largest
 * first, so the memory arena grows once), the built-in vocabulary's decoder chunk at the same
 * two batch sizes, and a full text batch at the full context. Partial batches in between reuse
 * the memory the largest one reserved.
 */
function warmupPlan(pack: ModelPack, maxBatch: { encode: number; decode: number; text: number }, chunkTags: number): WarmupPlan {
  const { builtin } = pack.manifest;
  const distinct = (...sizes: number[]) => [...new Set(sizes)];
  return {
    imageBatches: distinct(maxBatch.encode, 1),
    decode: { batches: distinct(maxBatch.decode, 1), tags: builtin.count > 0 ? decoderChunk(builtin.count, chunkTags) : 0, descriptions: builtin.descriptionsPerTag },
    textBatches: [maxBatch.text],
  };
}

/** Tag c's logit is row rowOf[c] of segment segmentOf[c]'s output. */
function gatherLogits(bank: LabelBank, perSegment: readonly ({ logits: Float32Array } | undefined)[]): Float32Array {
  const logits = new Float32Array(bank.tagCount);
  const from = perSegment.map((r) => r?.logits);
  for (let c = 0; c < bank.tagCount; c++) logits[c] = from[bank.segmentOf[c]!]![bank.rowOf[c]!]!;
  return logits;
}

/**
 * Tag i's rows of the heat-map graph's output [tags, layers, T] as a map: per layer and for the
 * mean of the layers, token 0's share (the global token) and the grid's probabilities divided
 * by their sum.
 */
function heatmapOf(tag: number, attention: Float32Array, i: number, grid: HeatmapGrid, T: number): TagHeatmap {
  const L = grid.layers;
  const mean = new Float64Array(T);
  const layers: HeatmapValues[] = [];
  for (let l = 0; l < L; l++) {
    const raw = attention.subarray((i * L + l) * T, (i * L + l + 1) * T);
    for (let t = 0; t < T; t++) mean[t]! += raw[t]! / L;
    layers.push(normalisedMap(raw));
  }
  return { tag, width: grid.width, height: grid.height, ...normalisedMap(mean), layers };
}

function normalisedMap(raw: ArrayLike<number>): HeatmapValues {
  const values = new Float32Array(raw.length - 1);
  let sum = 0;
  for (let t = 1; t < raw.length; t++) sum += raw[t]!;
  if (sum > 0) for (let t = 1; t < raw.length; t++) values[t - 1] = raw[t]! / sum;
  return { values, cls: Math.min(1, Math.max(0, raw[0]!)) };
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw cancelledError(signal.reason);
}

/** Hash of everything an image's embeddings depend on (see `EngineInfo.imageEncoderId`). */
function imageEncoderId(m: PackManifest): string {
  const identity = { pack: m.name, encoder: m.files[GRAPH_FILES.imageEncoder]?.sha256 ?? null, image: m.image, tokens: m.dims.imageTokens, dim: m.dims.embedDim };
  return createHash('sha256').update(JSON.stringify(identity)).digest('hex');
}
