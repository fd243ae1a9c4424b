/**
 * The local engine's settings and their defaults. The defaults are defined here once: the
 * configuration (src/config.ts) and the command line take theirs from ENGINE_DEFAULTS.
 */
import os from 'node:os';
import { DEFAULT_IMAGE_LIMITS, type ImageLimits, validateImageLimits } from '../image/limits.ts';
import type { ImageSpec, PreprocessedImage, ResizeMode } from '../image/preprocess.ts';
import { silentLogger, type Logger, type ProviderPreference } from './sessions.ts';

export const ENGINE_DEFAULTS = Object.freeze({
  workers: 1,
  /** Image intake threads (decode + resize); 0: one per core. */
  intakeWorkers: 0,
  /** Run the shapes requests will use before the workers report ready (see LocalEngineOptions.warmup). */
  warmup: true,
  maxBatchSize: 8,
  textBatchSize: 64,
  maxWaitMs: 5,
  maxQueue: 256,
  /** Tags per decoder run: 1,024 × 51 × 512 floats (107 MB) bound a run's peak memory. */
  decoderChunkTags: 1024,
  imageLimits: DEFAULT_IMAGE_LIMITS,
});

/** Encoded image bytes → normalised CHW pixels [3, S, S] and what the source was; throws BAD_IMAGE-like AppErrors. */
export type ImagePreprocessor = (bytes: Uint8Array, spec: ImageSpec) => Promise<PreprocessedImage>;

/** Settings of the local engine; the composition root maps configuration onto these. */
export interface LocalEngineOptions {
  /** Model pack directory. */
  packDir: string;
  /** Hash every pack file at start-up (about 1 s per GB). Default false. */
  verifyChecksums?: boolean;
  /** Default 'cpu'. */
  provider?: ProviderPreference;
  cudaDeviceId?: number;
  /** Worker threads, each with its own sessions (memory × workers). Default ENGINE_DEFAULTS.workers. */
  workers?: number;
  /** Threads that decode and resize images (runtime/intake-pool.ts); 0 or absent: one per core. */
  intakeWorkers?: number;
  /** onnxruntime intra-op threads per worker; 0 or absent: the machine's cores / workers. */
  intraOpThreads?: number;
  /** Images per image-encoder run. Default ENGINE_DEFAULTS.maxBatchSize. */
  maxBatchSize?: number;
  /** Images per decoder run (one bank). Default: maxBatchSize. */
  maxDecodeBatchSize?: number;
  /** Texts per text-encoder run. Default ENGINE_DEFAULTS.textBatchSize. */
  textBatchSize?: number;
  /** Longest wait for a batch to fill. Default ENGINE_DEFAULTS.maxWaitMs. */
  maxWaitMs?: number;
  /** Units (images, texts, image × bank) allowed to wait; beyond it OVERLOADED. Default ENGINE_DEFAULTS.maxQueue. */
  maxQueue?: number;
  /** Tags per decoder run: bounds peak memory on large banks. Default ENGINE_DEFAULTS.decoderChunkTags. */
  decoderChunkTags?: number;
  /**
   * Before a worker reports ready, run each graph at the shapes requests will use (image batches
   * of 1 and maxBatchSize, a decoder chunk of the built-in vocabulary at 1 and maxDecodeBatchSize
   * images, a full text batch), so that no request pays onnxruntime's slow first run at a new
   * shape. Costs about one full batch of each graph per worker at start-up. Default true.
   */
  warmup?: boolean;
  /** Limits on image bytes and pixels (checked before decoding). Default DEFAULT_IMAGE_LIMITS. */
  imageLimits?: ImageLimits;
  /** 'exact' (Pillow-identical, default) or 'fast' (libvips shrink-on-load). */
  resize?: ResizeMode;
  /** Replaces the default preprocessing (preprocess.ts with the options above, on the intake threads). */
  preprocess?: ImagePreprocessor;
  logger?: Logger;
  /** Worker entry overrides (tests). */
  workerUrl?: URL;
  intakeWorkerUrl?: URL;
  shutdownTimeoutMs?: number;
  /** Told of what the engine does, for metrics. */
  observer?: EngineObserver;
}

export interface EngineObserver {
  /** A batch starts: its kind (`encode`, `decode` or `text`) and how long each unit in it waited in the queue. */
  batch(kind: 'encode' | 'decode' | 'text', waitedMs: readonly number[]): void;
}


/** Options with every default applied and every number checked. */
export interface ResolvedEngineOptions {
  readonly workers: number;
  readonly intakeWorkers: number;
  readonly maxBatch: { readonly encode: number; readonly decode: number; readonly text: number };
  readonly maxWaitMs: number;
  readonly maxQueue: number;
  readonly decoderChunkTags: number;
  readonly warmup: boolean;
  readonly imageLimits: ImageLimits;
  readonly resize: ResizeMode;
  readonly preprocess: ImagePreprocessor | undefined;
  readonly provider: ProviderPreference;
  readonly cudaDeviceId: number;
  readonly intraOpThreads: number;
  readonly logger: Logger;
  readonly workerUrl: URL | undefined;
  readonly intakeWorkerUrl: URL | undefined;
  readonly shutdownTimeoutMs: number | undefined;
  readonly observer: EngineObserver | undefined;
}

/** Applies the defaults and refuses impossible settings at construction, not at the first request. */
export function resolveEngineOptions(options: Omit<LocalEngineOptions, 'packDir'>): ResolvedEngineOptions {
  const workers = positive('workers', options.workers ?? ENGINE_DEFAULTS.workers);
  const encode = positive('maxBatchSize', options.maxBatchSize ?? ENGINE_DEFAULTS.maxBatchSize);
  const maxBatch = {
    encode,
    decode: positive('maxDecodeBatchSize', options.maxDecodeBatchSize ?? encode),
    text: positive('textBatchSize', options.textBatchSize ?? ENGINE_DEFAULTS.textBatchSize),
  };
  const maxQueue = positive('maxQueue', options.maxQueue ?? ENGINE_DEFAULTS.maxQueue);
  if (maxQueue < Math.max(maxBatch.encode, maxBatch.decode, maxBatch.text)) {
    throw new RangeError('maxQueue must hold at least one full batch');
  }
  const imageLimits = options.imageLimits ?? ENGINE_DEFAULTS.imageLimits;
  validateImageLimits(imageLimits);
  return {
    workers,
    intakeWorkers: options.intakeWorkers ? positive('intakeWorkers', options.intakeWorkers) : Math.max(1, os.availableParallelism()),
    maxBatch,
    maxWaitMs: options.maxWaitMs ?? ENGINE_DEFAULTS.maxWaitMs,
    maxQueue,
    decoderChunkTags: positive('decoderChunkTags', options.decoderChunkTags ?? ENGINE_DEFAULTS.decoderChunkTags),
    warmup: options.warmup ?? ENGINE_DEFAULTS.warmup,
    imageLimits,
    resize: options.resize ?? 'exact',
    preprocess: options.preprocess,
    provider: options.provider ?? 'cpu',
    cudaDeviceId: options.cudaDeviceId ?? 0,
    // 0 or absent: share the machine's cores between the workers
    intraOpThreads: options.intraOpThreads ? positive('intraOpThreads', options.intraOpThreads) : Math.max(1, Math.floor(os.availableParallelism() / workers)),
    logger: options.logger ?? silentLogger,
    workerUrl: options.workerUrl,
    intakeWorkerUrl: options.intakeWorkerUrl,
    shutdownTimeoutMs: options.shutdownTimeoutMs,
    observer: options.observer,
  };
}

function positive(name: string, value: number): number {
  if (!(Number.isInteger(value) && value > 0)) throw new RangeError(`${name} must be a positive integer, got ${value}`);
  return value;
}
