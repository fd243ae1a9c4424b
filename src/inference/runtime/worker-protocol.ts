import type { ExecutionProvider, SessionSettings } from './sessions.ts';
import type { RunCounts, WarmedShape, WarmupPlan } from './model-runner.ts';

export const zeroRunCounts = (): RunCounts => ({ imageEncoder: 0, tagDecoder: 0, textEncoder: 0, heatmapDecoder: 0 });

/** `workerData` of an inference worker. */
export interface WorkerInit {
  packDir: string;
  settings: SessionSettings;
  /** Shapes to run before the worker says it is ready; absent: none. */
  warmup?: WarmupPlan;
}

/** One bank segment as posted: the arrays are SharedArrayBuffer views, so posting copies nothing. */
export interface SegmentMessage {
  key: string;
  tagCount: number;
  maxDescriptions: number;
  embedDim: number;
  /** float32 values or float16 bit patterns */
  embeds: Float32Array | Uint16Array;
  mask: Uint8Array;
}

export type Job =
  | { kind: 'encode'; pixels: Float32Array; count: number }
  | { kind: 'decode'; imageEmbeds: Float32Array; count: number; segment: SegmentMessage; chunkTags: number; explain: boolean }
  | { kind: 'texts'; texts: string[] }
  /** One image's heat maps for a few tags, gathered by the caller into plain (unshared) arrays. */
  | { kind: 'heatmaps'; imageEmbeds: Float32Array; tagCount: number; maxDescriptions: number; embedDim: number; embeds: Float32Array; mask: Uint8Array }
  /** Tokenising only: no model run, so it is posted to the pool directly, not batched. */
  | { kind: 'count-tokens'; texts: string[] };

export type JobResult =
  | { kind: 'encode'; imageEmbeds: Float32Array }
  | { kind: 'decode'; logits: Float32Array; weights?: Float32Array }
  | { kind: 'texts'; embeddings: Float32Array; truncated: boolean[] }
  | { kind: 'heatmaps'; attention: Float32Array }
  | { kind: 'count-tokens'; counts: number[] };

export type ToWorker = { type: 'job'; id: number; job: Job } | { type: 'close' };

export interface SerializedError {
  message: string;
  code?: string;
  details?: Record<string, unknown>;
}

export type FromWorker =
  /** `warmed`: the warm-up runs done before this message; `warmupMs`: their time. */
  | { type: 'ready'; provider: ExecutionProvider; warmed: WarmedShape[]; warmupMs: number }
  | { type: 'failed'; error: SerializedError }
  | { type: 'done'; id: number; result: JobResult; runs: RunCounts; runMs: RunCounts }
  | { type: 'error'; id: number; error: SerializedError; runs: RunCounts; runMs: RunCounts };
