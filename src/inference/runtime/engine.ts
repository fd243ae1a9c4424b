/**
 * The one interface the rest of the application uses for inference. The local
 * implementation (local-engine.ts) runs onnxruntime in worker threads; a remote inference
 * tier (e.g. Triton over KServe v2) can implement the same interface later.
 */
import type { BuiltinVocabulary } from '../pack/builtin-vocabulary.ts';
import type { PackManifest } from '../pack/manifest.ts';
import type { LabelBank } from '../scoring/label-bank.ts';
import type { ImageSource } from '../image/preprocess.ts';
import type { TagScores } from '../scoring/scores.ts';
import type { ExecutionProvider } from './sessions.ts';

export interface EngineInfo {
  packName: string;
  precision: PackManifest['precision'];
  /** The pack's weights are seeded random ones (a demo or benchmark pack): scores mean nothing. */
  randomWeights: boolean;
  /** int8 packs: the quantisation method and the drift against float32 measured at export. */
  quantization?: PackManifest['quantization'];
  imageSize: number;
  /** T: image tokens per image embedding. */
  imageTokens: number;
  /** E: width of image tokens and description embeddings. */
  embedDim: number;
  /** Token context of the text encoder (77 for CLIP). */
  textContext: number;
  builtinTagCount: number;
  builtinDescriptionsPerTag: number;
  /** Identity of the text encoder + tokenizer: keys the text-embedding cache. */
  textEncoderId: string;
  /**
   * Identity of what makes an image's embeddings: the pack's name, its image encoder's SHA-256
   * and its preprocessing (size, mean, std, resize) and output shape. Stored embeddings are only
   * valid for an engine with the same id.
   */
  imageEncoderId: string;
  /** The pack's heat-map grid (image tokens after the global one), or null: the pack has no heat-map graph. */
  heatmaps: HeatmapGrid | null;
  /** Execution provider in use; 'pending' until the engine has started. */
  provider: ExecutionProvider | 'pending';
  workers: number;
  /**
   * Once started: how long start-up took (workers, sessions, warm-up), the warm-up's share of it
   * (of the last worker to be ready), and the runs it made: graph and input shape (the decoder's
   * as [images, tags, descriptions]).
   */
  startup?: { ms: number; warmupMs: number; warmed: readonly { graph: string; shape: readonly number[] }[] };
}

export interface HeatmapGrid {
  width: number;
  height: number;
  /** Decoder layers with a map each. */
  layers: number;
}

/** One map: attention of a tag's query over the image grid. */
export interface HeatmapValues {
  /**
   * [height × width], row-major from the top left: the attention on each grid token divided by
   * the attention on all grid tokens, so the values sum to 1 (0 everywhere if none reached the grid).
   */
  values: Float32Array;
  /** Share of the attention on the global (CLS) token, in [0, 1]; the grid had the rest. */
  cls: number;
}

/**
 * Where a tag's query looked in one image: the decoder's cross-attention probabilities,
 * averaged over heads. `values`/`cls` combine the layers (the mean of their probabilities);
 * `layers` keeps each layer's map.
 */
export interface TagHeatmap extends HeatmapValues {
  /** The tag's index in the bank. */
  tag: number;
  width: number;
  height: number;
  layers: HeatmapValues[];
}

/** An image already decoded and normalised to the pack's [3, S, S] layout (fixed test inputs, self-tests). */
export interface ImagePixels {
  pixels: Float32Array;
}

/** Encoded image bytes (JPEG, PNG, WebP, …) or pixels prepared by the caller. */
export type ImageInput = Uint8Array | ImagePixels;

export type { ImageSource };

/** Output of the image encoder for one image: reusable across label banks. */
export interface ImageEmbeddings {
  readonly kind: 'image-embeddings';
  /** The pack that made it: embeddings of another pack are refused. */
  readonly packName: string;
  readonly tokens: number;
  readonly dim: number;
  /** [T, E] */
  readonly data: Float32Array;
}

/**
 * Room in the engine's queue taken for one request before anything else is done for it
 * (reading its images, asking the database, decoding): while it is held, that request's work is
 * never refused, and other requests are admitted only into the room that is left.
 */
export interface Admission {
  /** Units held. */
  readonly units: number;
  /** Gives the room back once the request has ended; a second call does nothing. */
  release(): void;
}

export interface RequestOptions {
  /** Tenant id (or any key) that batching rotates over fairly. */
  fairnessKey?: string;
  /** Aborting removes queued work and drops results of running work. */
  signal?: AbortSignal;
  /** The request's admission (`InferenceEngine.admit`): its work is not refused as OVERLOADED. */
  admission?: Admission;
}

export interface ScoreOptions extends RequestOptions {
  /** Also compute description weights (for "why this tag"). */
  explain?: boolean;
}

/** Where the time of one scored image went, in milliseconds. */
export interface ScoreTimings {
  /** Decoding and normalising its bytes; 0 when pixels or embeddings were given. */
  preprocessMs: number;
  /** From its pixels (or embeddings) being ready to its scores being ready: queueing and model runs. */
  inferenceMs: number;
}

export interface ScoredImage {
  /** What the encoded bytes were (format, size, …); null when pixels or embeddings were given. */
  source: ImageSource | null;
  /** Pass these back to score the image against other banks without running the encoder again. */
  embeddings: ImageEmbeddings;
  /** One entry per bank, in the order the banks were given. */
  scores: TagScores[];
  timings: ScoreTimings;
}

export interface TextEmbeddings {
  textEncoderId: string;
  dim: number;
  /** [N, E], rows L2-normalised. */
  embeddings: Float32Array;
  /** Per text: whether it was cut to the context length. */
  truncated: boolean[];
}

export interface EngineStats {
  queued: number;
  /** Units held by admitted requests that have not ended (`admit`). */
  admitted: number;
  maxQueue: number;
  runningBatches: number;
  batches: number;
  batchedUnits: number;
  rejectedOverloaded: number;
  cancelled: number;
  workers: { size: number; ready: number; busy: number; restarts: number; crashes: number };
  /** `heatmapDecoder`: runs of the heat-map graph (only when maps are asked for). */
  runs: { imageEncoder: number; tagDecoder: number; textEncoder: number; heatmapDecoder: number };
  /** Milliseconds spent running each graph. */
  runMs: { imageEncoder: number; tagDecoder: number; textEncoder: number; heatmapDecoder: number };
  /** The image intake threads (absent when preprocessing was replaced): images decoding, waiting, worker deaths. */
  intake?: { size: number; busy: number; queued: number; crashes: number };
}

export interface InferenceEngine {
  readonly info: EngineInfo;
  /** Starts the workers and loads the sessions; start-up errors (broken pack, no CUDA) surface here. */
  start(): Promise<EngineInfo>;
  /**
   * Admission of a request of `units` units of work (images × banks) before anything else is
   * done or held for it: OVERLOADED (with `details.retryAfterMs`) at once when the queue cannot
   * take it. Pass the admission with the request's calls and release it when the request ends.
   */
  admit(units: number): Admission;
  /**
   * The route from an image to its tag scores: bytes are decoded and normalised for this pack
   * within the configured limits (BAD_IMAGE, IMAGE_TOO_LARGE, UNSUPPORTED_FORMAT), encoded and
   * scored against each bank; the result also says what the bytes were and where the time
   * went. Images given as ImageEmbeddings skip the encoder, so scoring an image against
   * several banks (now or later) encodes it once.
   */
  scoreImages(images: readonly (ImageInput | ImageEmbeddings)[], banks: readonly LabelBank[], options?: ScoreOptions): Promise<ScoredImage[]>;
  /**
   * Heat maps of some tags of a bank on one image (typically the tags a request returns): a
   * second decoder pass over only those tags with the pack's heat-map graph, which is not
   * loaded or run otherwise. BAD_USER_INPUT when `info.heatmaps` is null or a tag index is
   * outside the bank. Maps are in the order of `tags`.
   */
  heatmaps(image: ImageEmbeddings, bank: LabelBank, tags: readonly number[], options?: RequestOptions): Promise<TagHeatmap[]>;
  /** Runs the image encoder once per image (the self-test's fixed inputs). */
  encodeImages(images: readonly ImageInput[], options?: RequestOptions): Promise<ImageEmbeddings[]>;
  /** Texts → L2-normalised embeddings with the pack's text encoder. */
  embedTexts(texts: readonly string[], options?: RequestOptions): Promise<TextEmbeddings>;
  /**
   * Tokens each text takes in the text encoder, start and end tokens included and not cut to
   * the context (so a count above `info.textContext` means the encoder would truncate it).
   */
  countTokens(texts: readonly string[]): Promise<number[]>;
  /** The pack's built-in vocabulary (loaded on first call, then shared). */
  builtinVocabulary(): Promise<BuiltinVocabulary>;
  stats(): EngineStats;
  /** Fails queued work, lets running work finish, stops the workers. */
  dispose(): Promise<void>;
}

export function isImageEmbeddings(x: unknown): x is ImageEmbeddings {
  return typeof x === 'object' && x !== null && (x as ImageEmbeddings).kind === 'image-embeddings';
}
