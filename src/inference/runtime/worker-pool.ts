import { fileURLToPath } from 'node:url';
import { Worker, type WorkerOptions } from 'node:worker_threads';
import { AppError, ErrorCode, type ErrorCode as ErrorCodeType } from '../../core/errors.ts';
import type { RunCounts, WarmedShape } from './model-runner.ts';
import type { ExecutionProvider, Logger } from './sessions.ts';
import { zeroRunCounts, type FromWorker, type Job, type JobResult, type SerializedError, type ToWorker, type WorkerInit } from './worker-protocol.ts';

export interface WorkerPoolOptions {
  size: number;
  init: WorkerInit;
  /** The worker entry; defaults to inference-worker.ts beside this file. */
  workerUrl?: URL;
  logger: Logger;
  /** Waiting for busy workers to finish at dispose() before giving up on them. */
  shutdownTimeoutMs?: number;
}

type SlotState = 'starting' | 'idle' | 'busy' | 'closing' | 'exited';

interface Pending {
  id: number;
  resolve(result: JobResult): void;
  reject(error: Error): void;
}

interface Slot {
  index: number;
  worker: Worker;
  state: SlotState;
  job?: Pending;
  startedAt: number;
  runs: RunCounts;
  runMs: RunCounts;
}

export interface PoolStats {
  size: number;
  ready: number;
  busy: number;
  restarts: number;
  crashes: number;
  runs: RunCounts;
  /** Milliseconds in `session.run()` per graph, over all workers (those gone included). */
  runMs: RunCounts;
}

const addTo = (into: RunCounts, r: RunCounts): void => {
  into.imageEncoder += r.imageEncoder;
  into.tagDecoder += r.tagDecoder;
  into.textEncoder += r.textEncoder;
  into.heatmapDecoder += r.heatmapDecoder;
};

const DEFAULT_WORKER_URL = new URL('./inference-worker.ts', import.meta.url);
const MAX_BACKOFF_MS = 30_000;

/**
 * Starts a worker thread on `entry`. A TypeScript entry (running under tsx, in tests and
 * `npm start`) is loaded through tsx's CommonJS hook from a small bootstrap: on Node 20 tsx
 * registers its ESM hooks in the main thread only, so `--import tsx` does nothing in a worker.
 */
export function startWorker(entry: URL, options: WorkerOptions): Worker {
  if (!entry.pathname.endsWith('.ts')) return new Worker(entry, options);
  const tsxCjsApi = fileURLToPath(import.meta.resolve('tsx/cjs/api'));
  const bootstrap = `require(${JSON.stringify(tsxCjsApi)}).register(); require(${JSON.stringify(fileURLToPath(entry))});`;
  return new Worker(bootstrap, { ...options, eval: true });
}

export function revive(e: SerializedError, fallback: ErrorCodeType = ErrorCode.INTERNAL_SERVER_ERROR): AppError {
  const code = (e.code && e.code in ErrorCode ? e.code : fallback) as ErrorCodeType;
  return new AppError(code, e.message, { details: e.details });
}

/**
 * A fixed number of inference worker threads. Each runs one job at a time. A worker that dies
 * fails its job with MODEL_UNAVAILABLE (retryable) and is replaced, with back-off if it keeps
 * dying. Busy workers are never terminate()d: doing that during a native onnxruntime run
 * aborts the whole process, so shutdown waits for the run and then asks the worker to exit.
 */
export class WorkerPool {
  private readonly slots: Slot[] = [];
  private readonly waiting: Array<{ job: Job; transfer: ArrayBuffer[]; pending: Pending }> = [];
  private readonly url: URL;
  private nextId = 1;
  private restarts = 0;
  private crashes = 0;
  private consecutiveFailures = 0;
  private lastStartMs = 1_000;
  private lastWarmupMs = 0;
  private lastWarmed: WarmedShape[] = [];
  private readonly finishedRuns: RunCounts = zeroRunCounts();
  private readonly finishedRunMs: RunCounts = zeroRunCounts();
  private closing = false;
  private providerUsed: ExecutionProvider | undefined;
  private firstStart: Promise<ExecutionProvider> | undefined;
  private readonly respawnTimers = new Set<NodeJS.Timeout>();
  /** Called whenever a worker may have become free (after a job, after a (re)start). */
  onAvailable: () => void = () => {};

  constructor(private readonly options: WorkerPoolOptions) {
    if (!(Number.isInteger(options.size) && options.size > 0)) throw new RangeError('worker pool size must be a positive integer');
    this.url = options.workerUrl ?? DEFAULT_WORKER_URL;
  }

  get provider(): ExecutionProvider | undefined {
    return this.providerUsed;
  }

  /** Time the last worker to start spent warming up (included in its start). */
  get warmupMs(): number {
    return this.lastWarmupMs;
  }

  /** The shapes the last worker to start ran before it reported ready. */
  get warmed(): readonly WarmedShape[] {
    return this.lastWarmed;
  }

  /** Estimated wait before a retry can succeed: about one worker start. */
  get retryAfterMs(): number {
    return Math.max(100, Math.round(this.lastStartMs));
  }

  /**
   * Starts every worker once and resolves when all are ready, with the provider they use.
   * A worker that fails to start (broken pack, CUDA missing) rejects with its error.
   */
  start(): Promise<ExecutionProvider> {
    if (this.closing) return Promise.reject(this.closedError());
    this.firstStart ??= new Promise<ExecutionProvider>((resolve, reject) => {
      let ready = 0;
      let failed = false;
      for (let i = 0; i < this.options.size; i++) {
        this.spawn(i, {
          resolve: (p) => {
            if (++ready === this.options.size && !failed) resolve(p);
          },
          reject: (e) => {
            if (failed) return;
            failed = true;
            reject(e);
          },
        });
      }
    });
    // a failed start can be retried by the next call
    this.firstStart.catch(() => {
      this.firstStart = undefined;
    });
    return this.firstStart;
  }

  idleCount(): number {
    return this.slots.filter((s) => s.state === 'idle').length;
  }

  /** Runs a job on an idle worker (or the next one to become idle). */
  run(job: Job, transfer: ArrayBuffer[] = []): Promise<JobResult> {
    if (this.closing) return Promise.reject(this.closedError());
    return new Promise<JobResult>((resolve, reject) => {
      const pending: Pending = { id: this.nextId++, resolve, reject };
      const slot = this.slots.find((s) => s.state === 'idle');
      if (slot) this.dispatch(slot, job, transfer, pending);
      else this.waiting.push({ job, transfer, pending });
    });
  }

  stats(): PoolStats {
    const runs = { ...this.finishedRuns };
    const runMs = { ...this.finishedRunMs };
    for (const s of this.slots) {
      if (s.state === 'exited') continue;
      addTo(runs, s.runs);
      addTo(runMs, s.runMs);
    }
    return {
      size: this.options.size,
      ready: this.slots.filter((s) => s.state === 'idle' || s.state === 'busy').length,
      busy: this.slots.filter((s) => s.state === 'busy').length,
      restarts: this.restarts,
      crashes: this.crashes,
      runs,
      runMs,
    };
  }

  /** Finishes running jobs, fails waiting ones, then lets every worker exit. */
  async dispose(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    for (const t of this.respawnTimers) clearTimeout(t);
    for (const w of this.waiting.splice(0)) w.pending.reject(this.closedError());
    const timeout = this.options.shutdownTimeoutMs ?? 30_000;
    await Promise.all(this.slots.map((slot) => this.closeSlot(slot, timeout)));
  }

  private closedError(): AppError {
    return shuttingDown();
  }

  private spawn(index: number, waiter?: { resolve(p: ExecutionProvider): void; reject(e: Error): void }): void {
    const worker = startWorker(this.url, { workerData: this.options.init });
    const slot: Slot = { index, worker, state: 'starting', startedAt: performance.now(), runs: zeroRunCounts(), runMs: zeroRunCounts() };
    this.slots[index] = slot;
    let startError: Error | undefined;

    worker.on('message', (message: FromWorker) => {
      switch (message.type) {
        case 'ready':
          this.lastStartMs = performance.now() - slot.startedAt;
          this.consecutiveFailures = 0;
          this.providerUsed ??= message.provider;
          if (this.closing) {
            waiter?.reject(this.closedError()); // dispose() already asked it to close
            return;
          }
          slot.state = 'idle';
          this.lastWarmupMs = message.warmupMs;
          this.lastWarmed = message.warmed;
          this.options.logger.info(
            { worker: index, provider: message.provider, startMs: Math.round(this.lastStartMs), warmupMs: Math.round(message.warmupMs) },
            'inference worker ready',
          );
          waiter?.resolve(message.provider);
          this.drainWaiting(slot);
          return;
        case 'failed':
          startError = revive(message.error, ErrorCode.MODEL_UNAVAILABLE);
          return;
        case 'done':
        case 'error': {
          slot.runs = message.runs;
          slot.runMs = message.runMs;
          const pending = slot.job;
          if (!pending || pending.id !== message.id) return;
          slot.job = undefined;
          if (slot.state === 'busy') slot.state = 'idle';
          if (message.type === 'done') pending.resolve(message.result);
          else pending.reject(revive(message.error));
          this.drainWaiting(slot);
          return;
        }
      }
    });
    worker.on('error', (e) => {
      // an uncaught exception inside the worker; 'exit' follows
      startError ??= e;
      this.options.logger.error({ worker: index, err: e.message }, 'inference worker failed');
    });
    worker.on('exit', (code) => this.onExit(slot, code, startError, waiter));
  }

  private onExit(slot: Slot, code: number, startError: Error | undefined, waiter?: { reject(e: Error): void }): void {
    const wasStarting = slot.state === 'starting';
    const expected = slot.state === 'closing';
    slot.state = 'exited';
    addTo(this.finishedRuns, slot.runs);
    addTo(this.finishedRunMs, slot.runMs);
    slot.runs = zeroRunCounts();
    slot.runMs = zeroRunCounts();
    if (expected || this.closing) {
      slot.job?.reject(this.closedError());
      slot.job = undefined;
      waiter?.reject(this.closedError());
      return;
    }

    this.crashes++;
    const crash = new AppError(
      ErrorCode.MODEL_UNAVAILABLE,
      `the inference worker stopped unexpectedly (exit code ${code}); retry the request`,
      { cause: startError, details: { retryable: true, retryAfterMs: this.retryAfterMs } },
    );
    if (slot.job) {
      slot.job.reject(crash);
      slot.job = undefined;
    }
    if (wasStarting) {
      const error = startError ?? crash;
      this.consecutiveFailures++;
      if (waiter) {
        // the first start: report the start-up error (e.g. a broken pack) and do not retry
        waiter.reject(error);
        return;
      }
      // a replacement could not start: jobs waiting for a worker would wait forever
      for (const w of this.waiting.splice(0)) w.pending.reject(error);
      this.options.logger.error({ worker: slot.index, err: error.message }, 'inference worker could not be restarted');
    } else {
      this.options.logger.error({ worker: slot.index, code }, 'inference worker crashed; starting a replacement');
    }
    this.scheduleRespawn(slot.index);
  }

  private scheduleRespawn(index: number): void {
    const delay = this.consecutiveFailures === 0 ? 0 : Math.min(MAX_BACKOFF_MS, 500 * 2 ** (this.consecutiveFailures - 1));
    const timer = setTimeout(() => {
      this.respawnTimers.delete(timer);
      if (this.closing) return;
      this.restarts++;
      this.spawn(index);
    }, delay);
    this.respawnTimers.add(timer);
  }


  private dispatch(slot: Slot, job: Job, transfer: ArrayBuffer[], pending: Pending): void {
    slot.state = 'busy';
    slot.job = pending;
    const message: ToWorker = { type: 'job', id: pending.id, job };
    slot.worker.postMessage(message, transfer);
  }

  private drainWaiting(slot: Slot): void {
    const next = this.waiting.shift();
    if (next) this.dispatch(slot, next.job, next.transfer, next.pending);
    else this.onAvailable();
  }

  private async closeSlot(slot: Slot, timeoutMs: number): Promise<void> {
    if (slot.state === 'exited') return;
    const exited = new Promise<void>((resolve) => slot.worker.once('exit', () => resolve()));
    if (slot.state === 'busy') {
      // let the native run finish: terminating now would abort the process
      await Promise.race([new Promise<void>((resolve) => slot.worker.once('message', () => resolve())), exited, delay(timeoutMs)]);
    }
    if (slot.state === 'busy') {
      this.options.logger.warn({ worker: slot.index }, 'inference worker still busy at shutdown; leaving it to end with the process');
      slot.worker.unref();
      return;
    }
    slot.state = 'closing';
    slot.worker.postMessage({ type: 'close' } satisfies ToWorker);
    await Promise.race([exited, delay(Math.max(timeoutMs, 5_000))]);
  }
}

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());

/** What work gets once the engine is closing: retryable, on another replica or after a restart. */
export function shuttingDown(): AppError {
  return new AppError(ErrorCode.MODEL_UNAVAILABLE, 'the inference engine is shutting down', { details: { retryable: true } });
}
