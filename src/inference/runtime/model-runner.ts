import * as ort from 'onnxruntime-node';
import { float16ToFloat32 } from '../pack/float16.ts';
import type { GraphName } from '../pack/manifest.ts';
import type { ModelPack } from '../pack/pack.ts';
import { zeroRunCounts } from './worker-protocol.ts';
import { createGraphSession, createHeatmapSession, silentLogger, type ExecutionProvider, type Logger, type SessionSettings } from './sessions.ts';

/** What the decoder needs of one bank segment (float16 embeddings as their bit patterns). */
export interface SegmentData {
  readonly tagCount: number;
  readonly maxDescriptions: number;
  readonly embedDim: number;
  readonly embeds: Float32Array | Uint16Array;
  readonly mask: Uint8Array;
}

export interface DecodeOptions {
  /** Tags per decoder run; bounds the decoder's intermediates ([B, chunk, T] attention etc.). */
  chunkTags: number;
  /** Also return description_weights [B, C, D]. */
  explain: boolean;
}

export interface DecodeOutput {
  /** [B, C] */
  logits: Float32Array;
  /** [B, C, D] when `explain` */
  weights?: Float32Array;
}

/** Runs per graph; `heatmapDecoder` is the optional heat-map graph (only run when maps are asked for). */
export type RunCounts = Record<GraphName | 'heatmapDecoder', number>;

/** One warm-up run: the graph and its main input's shape (decoder: [images, tags, descriptions]). */
export interface WarmedShape {
  graph: GraphName;
  shape: number[];
}

/**
 * The input shapes to run once before serving (runtime/warmup.ts decides them). onnxruntime's
 * first run at a new shape is slow (arena growth, memory planning); the runs here take that
 * cost at start-up instead of a request.
 */
export interface WarmupPlan {
  /** Image-encoder batch sizes. */
  imageBatches: readonly number[];
  /** Decoder runs: image batch sizes × one chunk of `tags` tags with `descriptions` descriptions each. */
  decode: { batches: readonly number[]; tags: number; descriptions: number };
  /** Text-encoder batch sizes, at the full context. */
  textBatches: readonly number[];
}

/**
 * Runs the pack's three graphs. One instance per thread: `session.run()` blocks the thread it
 * is called on, so this lives in a worker (see inference-worker.ts); tests also use it directly.
 * Sessions are created on first use, once, behind a promise.
 */
export class ModelRunner {
  private readonly sessions = new Map<GraphName, Promise<ort.InferenceSession>>();
  private providerUsed: ExecutionProvider | undefined;
  private staging = new Float32Array(0);
  private disposed = false;
  private trimmingChecked: Promise<boolean> | undefined;
  readonly runs: RunCounts = zeroRunCounts();
  /** Milliseconds spent in `session.run()` per graph (for operators' metrics). */
  readonly runMs: RunCounts = zeroRunCounts();
  private heatmapSession: Promise<ort.InferenceSession> | undefined;

  constructor(
    readonly pack: ModelPack,
    private readonly settings: SessionSettings,
    private readonly logger: Logger = silentLogger,
  ) {}

  /** Provider of the sessions created so far (undefined before the first). */
  get provider(): ExecutionProvider | undefined {
    return this.providerUsed;
  }

  /** Creates all three sessions now, so a broken pack fails at start-up rather than later. */
  async warmup(): Promise<ExecutionProvider> {
    await Promise.all((['imageEncoder', 'tagDecoder', 'textEncoder'] as const).map((g) => this.session(g)));
    return this.providerUsed!;
  }

  /**
   * Runs every shape of the plan once (inputs of no meaning; the outputs are dropped) and
   * leaves the run counters as they were, so that metrics count requests only.
   */
  async warm(plan: WarmupPlan): Promise<WarmedShape[]> {
    const warmed: WarmedShape[] = [];
    const runs = { ...this.runs };
    const runMs = { ...this.runMs };
    const { image, dims, tokenizer } = this.pack.manifest;
    const S = image.size;
    const largest = Math.max(1, ...plan.imageBatches, ...plan.decode.batches);
    let embeds: Float32Array | undefined;
    for (const b of plan.imageBatches) {
      const out = await this.encodeImages(new Float32Array(b * 3 * S * S), b);
      warmed.push({ graph: 'imageEncoder', shape: [b, 3, S, S] });
      if (b === largest) embeds = out;
    }
    embeds ??= new Float32Array(largest * dims.imageTokens * dims.embedDim);
    const { tags, descriptions } = plan.decode;
    if (plan.decode.batches.length > 0 && tags > 0 && descriptions > 0) {
      const segment: SegmentData = {
        tagCount: tags,
        maxDescriptions: descriptions,
        embedDim: dims.embedDim,
        embeds: new Float32Array(tags * descriptions * dims.embedDim).fill(1 / Math.sqrt(dims.embedDim)),
        mask: new Uint8Array(tags * descriptions).fill(1),
      };
      for (const b of plan.decode.batches) {
        await this.decode(embeds.subarray(0, b * dims.imageTokens * dims.embedDim), b, segment, { chunkTags: tags, explain: false });
        warmed.push({ graph: 'tagDecoder', shape: [b, tags, descriptions] });
      }
    }
    const L = dims.textContext;
    for (const n of plan.textBatches) {
      const ids = new BigInt64Array(n * L);
      for (let i = 0; i < n; i++) {
        ids[i * L] = BigInt(tokenizer.bos);
        ids[i * L + L - 1] = BigInt(tokenizer.eos); // the full context is used
      }
      await this.encodeTexts(ids, n);
      warmed.push({ graph: 'textEncoder', shape: [n, L] });
    }
    Object.assign(this.runs, runs);
    Object.assign(this.runMs, runMs);
    return warmed;
  }

  private session(graph: GraphName): Promise<ort.InferenceSession> {
    if (this.disposed) return Promise.reject(new Error('model runner is disposed'));
    let s = this.sessions.get(graph);
    if (!s) {
      s = createGraphSession(this.pack, graph, this.settings, this.logger).then(({ session, provider }) => {
        this.providerUsed ??= provider;
        return session;
      });
      // a failed creation is retried on the next call rather than cached forever
      s.catch(() => this.sessions.delete(graph));
      this.sessions.set(graph, s);
    }
    return s;
  }

  /** pixels [B,3,S,S] → image_embeds [B,T,E] */
  async encodeImages(pixels: Float32Array, count: number): Promise<Float32Array> {
    const S = this.pack.manifest.image.size;
    expectLength('pixel_values', pixels, count * 3 * S * S);
    const session = await this.session('imageEncoder');
    const started = performance.now();
    const out = await session.run({ pixel_values: new ort.Tensor('float32', pixels, [count, 3, S, S]) });
    this.runMs.imageEncoder += performance.now() - started;
    this.runs.imageEncoder++;
    return tensorData(out.image_embeds, 'image_embeds');
  }

  /**
   * image_embeds [B,T,E] × segment [C,D,E] → logits [B,C] (+ weights [B,C,D]), in chunks of
   * tags. Tags are independent in the decoder, so chunking changes nothing but peak memory.
   */
  async decode(imageEmbeds: Float32Array, count: number, bank: SegmentData, options: DecodeOptions): Promise<DecodeOutput> {
    const { tagCount: C, maxDescriptions: D, embedDim: E } = bank;
    const T = this.pack.manifest.dims.imageTokens;
    expectLength('image_embeds', imageEmbeds, count * T * E);
    expectLength('label_embeds', bank.embeds, C * D * E);
    expectLength('label_mask', bank.mask, C * D);
    const session = await this.session('tagDecoder');
    const imageTensor = new ort.Tensor('float32', imageEmbeds, [count, T, E]);
    const fetches = options.explain ? ['logits', 'description_weights'] : ['logits'];

    const logits = new Float32Array(count * C);
    const weights = options.explain ? new Float32Array(count * C * D) : undefined;
    const chunk = decoderChunk(C, options.chunkTags);
    for (let start = 0; start < C; start += chunk) {
      const n = Math.min(chunk, C - start);
      const embeds = this.unshared(bank.embeds, start * D * E, n * D * E);
      const mask = Uint8Array.from(bank.mask.subarray(start * D, (start + n) * D));
      const started = performance.now();
      const out = await session.run(
        {
          image_embeds: imageTensor,
          label_embeds: new ort.Tensor('float32', embeds, [n, D, E]),
          label_mask: new ort.Tensor('bool', mask, [n, D]),
        },
        fetches,
      );
      this.runMs.tagDecoder += performance.now() - started;
      this.runs.tagDecoder++;
      const chunkLogits = tensorData(out.logits, 'logits');
      expectLength('logits', chunkLogits, count * n);
      for (let b = 0; b < count; b++) logits.set(chunkLogits.subarray(b * n, (b + 1) * n), b * C + start);
      if (weights) {
        const w = tensorData(out.description_weights, 'description_weights');
        expectLength('description_weights', w, count * n * D);
        for (let b = 0; b < count; b++) weights.set(w.subarray(b * n * D, (b + 1) * n * D), (b * C + start) * D);
      }
    }
    return weights ? { logits, weights } : { logits };
  }

  /**
   * Heat-map graph: image_embeds [1,T,E] × a few tags [C,D,E] → cross-attention [C, layers, T]
   * (per tag and layer, averaged over heads; token 0 is the global token). Its session is
   * created on first use: a server never asked for maps never loads it.
   */
  async attention(imageEmbeds: Float32Array, tags: SegmentData): Promise<Float32Array> {
    const hm = this.pack.manifest.heatmaps;
    const { tagCount: C, maxDescriptions: D, embedDim: E } = tags;
    const T = this.pack.manifest.dims.imageTokens;
    expectLength('image_embeds', imageEmbeds, T * E);
    expectLength('label_embeds', tags.embeds, C * D * E);
    expectLength('label_mask', tags.mask, C * D);
    if (!(tags.embeds instanceof Float32Array)) throw new RangeError('heat-map label_embeds must be float32');
    this.heatmapSession ??= createHeatmapSession(this.pack, this.settings, this.logger).then(({ session }) => session);
    this.heatmapSession.catch(() => (this.heatmapSession = undefined));
    const session = await this.heatmapSession;
    const output = hm!.output;
    const started = performance.now();
    const out = await session.run(
      {
        image_embeds: new ort.Tensor('float32', imageEmbeds, [1, T, E]),
        label_embeds: new ort.Tensor('float32', tags.embeds, [C, D, E]),
        label_mask: new ort.Tensor('bool', tags.mask, [C, D]),
      },
      [output],
    );
    this.runMs.heatmapDecoder += performance.now() - started;
    this.runs.heatmapDecoder++;
    const attention = tensorData(out[output], output);
    expectLength(output, attention, C * hm!.layers * T);
    return attention;
  }

  /**
   * input_ids [N,L] → text_embeds [N,E]. The text encoder is causal and reads its features at
   * the end token, so padding after the longest text's end token cannot change the result:
   * when the graph accepts a shorter L (checked once against the full context), runs are cut
   * to the longest text of the batch, which makes short texts several times cheaper.
   */
  async encodeTexts(inputIds: BigInt64Array, count: number): Promise<Float32Array> {
    const L = this.pack.manifest.dims.textContext;
    expectLength('input_ids', inputIds, count * L);
    const session = await this.session('textEncoder');
    const used = (await this.textTrimming()) ? usedContext(inputIds, count, L, this.pack.manifest.tokenizer.eos) : L;
    const ids = used === L ? inputIds : trimRows(inputIds, count, L, used);
    const started = performance.now();
    const out = await session.run({ input_ids: new ort.Tensor('int64', ids, [count, used]) });
    this.runMs.textEncoder += performance.now() - started;
    this.runs.textEncoder++;
    return tensorData(out.text_embeds, 'text_embeds');
  }

  /** Whether cutting the context is exact for this graph: one comparison, remembered. */
  private textTrimming(): Promise<boolean> {
    this.trimmingChecked ??= (async () => {
      const session = await this.session('textEncoder');
      const L = this.pack.manifest.dims.textContext;
      const { bos, eos } = this.pack.manifest.tokenizer;
      const full = new BigInt64Array(2 * L);
      [320, 1125, 539, 320, 2368].forEach((id, i) => (full[1 + i] = BigInt(id))); // "a photo of a cat"
      full[0] = BigInt(bos);
      full[6] = BigInt(eos);
      full.copyWithin(L, 0, L);
      full[L + 3] = BigInt(eos); // a shorter second row
      try {
        const a = tensorData((await session.run({ input_ids: new ort.Tensor('int64', full, [2, L]) })).text_embeds, 'text_embeds');
        const cut = trimRows(full, 2, L, 7);
        const b = tensorData((await session.run({ input_ids: new ort.Tensor('int64', cut, [2, 7]) })).text_embeds, 'text_embeds');
        let diff = 0;
        for (let i = 0; i < a.length; i++) diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
        const exact = a.length === b.length && diff <= 1e-5;
        if (!exact) this.logger.warn({ diff }, 'text encoder depends on padding: running at full context');
        return exact;
      } catch (e) {
        this.logger.info({ err: (e as Error).message }, 'text encoder needs the full context');
        return false;
      }
    })();
    return this.trimmingChecked;
  }

  /**
   * onnxruntime-node rejects views of a SharedArrayBuffer ("Invalid argument"), so shared
   * segment slices are copied into one reusable float32 buffer (about 8 ms per 100 MB);
   * float16 segments are widened in that same copy.
   */
  private unshared(source: Float32Array | Uint16Array, offset: number, length: number): Float32Array {
    const view = source.subarray(offset, offset + length);
    if (view instanceof Float32Array && !(source.buffer instanceof SharedArrayBuffer)) return view;
    if (this.staging.length < length) this.staging = new Float32Array(length);
    const target = this.staging.length === length ? this.staging : this.staging.subarray(0, length);
    if (view instanceof Uint16Array) float16ToFloat32(view, target);
    else target.set(view);
    return target;
  }

  async dispose(): Promise<void> {
    this.disposed = true;
    const pending = [...this.sessions.values()];
    if (this.heatmapSession) pending.push(this.heatmapSession);
    this.heatmapSession = undefined;
    this.sessions.clear();
    this.staging = new Float32Array(0);
    for (const p of pending) {
      const s = await p.catch(() => undefined);
      await s?.release();
    }
  }
}

/**
 * Tags per decoder run for a segment of C tags: at most `chunkTags`, and the runs as even as
 * can be (4,585 tags at 1,024 → five runs of 917, not four of 1,024 and one of 489), so that a
 * segment is decoded at one shape, which the warm-up can run ahead of time.
 */
export function decoderChunk(C: number, chunkTags: number): number {
  const runs = Math.ceil(C / Math.max(1, Math.min(chunkTags, C)));
  return Math.max(1, Math.ceil(C / runs));
}

/** Columns up to the last end token of any row (at least 2). */
function usedContext(ids: BigInt64Array, count: number, L: number, eos: number): number {
  const end = BigInt(eos);
  let used = 2;
  for (let n = 0; n < count; n++) {
    for (let k = L - 1; k >= used; k--) {
      if (ids[n * L + k] === end) {
        used = k + 1;
        break;
      }
    }
  }
  return used;
}

function trimRows(ids: BigInt64Array, count: number, L: number, used: number): BigInt64Array {
  const out = new BigInt64Array(count * used);
  for (let n = 0; n < count; n++) out.set(ids.subarray(n * L, n * L + used), n * used);
  return out;
}

function expectLength(name: string, data: { length: number }, expected: number): void {
  if (data.length !== expected) throw new RangeError(`${name}: ${data.length} values, expected ${expected}`);
}

function tensorData(value: ort.OnnxValue | undefined, name: string): Float32Array {
  if (!value || !(value.data instanceof Float32Array)) throw new Error(`graph output ${name} is missing or not float32`);
  return value.data;
}
