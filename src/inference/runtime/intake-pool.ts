/**
 * Image intake off the main thread: a fixed number of worker threads (intake-worker.ts), each
 * preprocessing one image at a time, so that decoding and the exact resize of a 12-megapixel
 * photo (≈100 ms of CPU) never block the event loop and run on every core at once. The main
 * thread only copies the encoded bytes into a message and receives the pixels as a
 * transferred buffer.
 *
 * A worker that dies (an uncaught error, running out of memory, `process.exit`) fails only
 * the image it was working on, with MODEL_UNAVAILABLE (retryable), and is replaced; a worker
 * that cannot even start is retried with back-off and fails the images waiting for it.
 * Errors of the image itself (BAD_IMAGE, IMAGE_TOO_LARGE, UNSUPPORTED_FORMAT) reach the
 * caller with the same code, message and details as on the main thread.
 */
import type { Worker } from 'node:worker_threads';
import { AppError, ErrorCode } from '../../core/errors.ts';
import type { PreprocessedImage } from '../image/preprocess.ts';
import type { FromIntake, IntakeInit, ToIntake } from './intake-protocol.ts';
import type { Logger } from './sessions.ts';
import { revive, shuttingDown, startWorker } from './worker-pool.ts';

export interface IntakePoolOptions {
  size: number;
  init: IntakeInit;
  logger: Logger;
  /** The worker entry; defaults to intake-worker.ts beside this file (tests replace it). */
  workerUrl?: URL;
}

interface Job {
  id: number;
  bytes: Uint8Array;
  resolve(image: PreprocessedImage): void;
  reject(error: Error): void;
}

interface Slot {
  worker: Worker;
  ready: boolean;
  job?: Job;
}

export interface IntakeStats {
  size: number;
  busy: number;
  queued: number;
  crashes: number;
}

const DEFAULT_WORKER_URL = new URL('./intake-worker.ts', import.meta.url);
const MAX_BACKOFF_MS = 30_000;

export class IntakePool {
  private readonly slots: (Slot | undefined)[];
  private readonly queue: Job[] = [];
  private readonly url: URL;
  private nextId = 1;
  private crashes = 0;
  private failedStarts = 0;
  private closing = false;
  private started = false;
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(private readonly options: IntakePoolOptions) {
    if (!(Number.isInteger(options.size) && options.size > 0)) throw new RangeError('intake pool size must be a positive integer');
    this.slots = new Array<Slot | undefined>(options.size);
    this.url = options.workerUrl ?? DEFAULT_WORKER_URL;
  }

  /** Starts the threads (also done by the first image). */
  start(): void {
    if (this.started || this.closing) return;
    this.started = true;
    for (let i = 0; i < this.options.size; i++) this.spawn(i);
  }

  /** One image's bytes → normalised pixels and what the source was, computed on a worker. */
  preprocess(bytes: Uint8Array): Promise<PreprocessedImage> {
    if (this.closing) return Promise.reject(shuttingDown());
    this.start();
    return new Promise((resolve, reject) => {
      this.queue.push({ id: this.nextId++, bytes, resolve, reject });
      this.dispatch();
    });
  }

  stats(): IntakeStats {
    return {
      size: this.options.size,
      busy: this.slots.filter((s) => s?.job).length,
      queued: this.queue.length,
      crashes: this.crashes,
    };
  }

  /** Fails queued images, lets running ones finish (bounded), then stops every thread. */
  async dispose(timeoutMs = 30_000): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    for (const t of this.timers) clearTimeout(t);
    for (const job of this.queue.splice(0)) job.reject(shuttingDown());
    await Promise.all(
      this.slots.map(async (slot) => {
        if (!slot) return;
        const exited = new Promise<void>((resolve) => slot.worker.once('exit', () => resolve()));
        if (slot.job) await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, timeoutMs).unref()), this.settled(slot.job)]);
        slot.worker.postMessage({ type: 'close' } satisfies ToIntake);
        await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5_000).unref())]);
        slot.worker.unref();
      }),
    );
  }

  private settled(job: Job): Promise<void> {
    return new Promise((resolve) => {
      const { resolve: ok, reject: fail } = job;
      job.resolve = (v) => (ok(v), resolve());
      job.reject = (e) => (fail(e), resolve());
    });
  }

  private spawn(index: number): void {
    const worker = startWorker(this.url, { workerData: this.options.init });
    const slot: Slot = { worker, ready: false };
    this.slots[index] = slot;
    let uncaught: Error | undefined;
    worker.on('message', (message: FromIntake) => {
      if (message.type === 'ready') {
        slot.ready = true;
        this.failedStarts = 0;
        this.dispatch();
        return;
      }
      const job = slot.job;
      if (!job || job.id !== message.id) return;
      slot.job = undefined;
      if (message.type === 'done') job.resolve({ pixels: message.pixels, source: message.source });
      else job.reject(revive(message.error));
      this.dispatch();
    });
    worker.on('error', (e) => {
      uncaught = e; // 'exit' follows
      this.options.logger.error({ worker: index, err: e.message }, 'image intake worker failed');
    });
    worker.on('exit', (code) => {
      if (this.slots[index] === slot) this.slots[index] = undefined;
      const job = slot.job;
      slot.job = undefined;
      if (this.closing) {
        job?.reject(shuttingDown());
        return;
      }
      this.crashes++;
      const crash = new AppError(
        ErrorCode.MODEL_UNAVAILABLE,
        `the image intake worker stopped unexpectedly (exit code ${code}); retry the request`,
        { cause: uncaught, details: { retryable: true } },
      );
      job?.reject(crash);
      if (!slot.ready) {
        // it could not start: images waiting for a thread would wait forever
        this.failedStarts++;
        for (const waiting of this.queue.splice(0)) waiting.reject(crash);
      }
      this.options.logger.error({ worker: index, code }, 'image intake worker stopped; starting a replacement');
      const delay = this.failedStarts === 0 ? 0 : Math.min(MAX_BACKOFF_MS, 500 * 2 ** (this.failedStarts - 1));
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        if (!this.closing) this.spawn(index);
      }, delay);
      this.timers.add(timer);
    });
  }

  private dispatch(): void {
    for (const slot of this.slots) {
      if (this.queue.length === 0) return;
      if (!slot?.ready || slot.job) continue;
      const job = this.queue.shift()!;
      slot.job = job;
      // a copy of just these bytes, moved to the worker: the caller keeps its own array, and
      // a view into a larger buffer does not drag that whole buffer along (not `slice()`,
      // which on a Buffer is a view)
      const bytes = new Uint8Array(job.bytes);
      slot.worker.postMessage({ type: 'job', id: job.id, bytes } satisfies ToIntake, [bytes.buffer]);
      job.bytes = new Uint8Array(0);
    }
  }
}
