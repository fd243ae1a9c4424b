import { AppError, ErrorCode } from '../../core/errors.ts';
import type { Admission } from './engine.ts';

/**
 * Dynamic micro-batching with a bounded queue and per-key fairness.
 *
 * Callers submit units (one image, one text, one image × bank) tagged with a *group*: units
 * of the same group can share one model run. A batch is formed when a run slot is free and a
 * group is full (`maxBatch`) or its oldest unit has waited `maxWaitMs`. Which group goes next,
 * and which units fill it, rotate round-robin over fairness keys (tenants), so a burst from
 * one key cannot starve another.
 */
export interface MicroBatcherOptions<P, R> {
  /** Units waiting at most; beyond it submit() fails with OVERLOADED. */
  maxQueue: number;
  maxWaitMs: number;
  maxBatch(group: string): number;
  /** Free run slots now (idle workers). */
  freeSlots(): number;
  /** Runs one batch; results align with payloads. */
  execute(group: string, payloads: P[]): Promise<R[]>;
  /** Told of each batch as it starts: its group and how long each of its units waited. */
  onBatch?(group: string, waitedMs: readonly number[]): void;
}

export interface SubmitOptions {
  /** Tenant (or other) key that fairness rotates over. */
  fairnessKey?: string;
  signal?: AbortSignal;
  /** Room taken by `admit()` for the request this work belongs to: its units are not refused. */
  admission?: Admission;
}


interface Request<P, R> {
  results: R[];
  remaining: number;
  settled: boolean;
  units: Set<Unit<P, R>>;
  resolve(results: R[]): void;
  reject(error: Error): void;
  cleanup(): void;
}

/** The batcher's side of an `Admission`: the room it holds and how much of it is queued now. */
class HeldRoom implements Admission {
  queued = 0;
  held = true;
  constructor(
    public units: number,
    readonly release: () => void,
  ) {}
}

interface Unit<P, R> {
  group: string;
  /** The admission it was queued under: its room is counted there, in `admitted`. */
  admission: HeldRoom | undefined;
  key: string;
  payload: P;
  index: number;
  enqueuedAt: number;
  request: Request<P, R>;
}

export interface BatcherStats {
  queued: number;
  /** Units held by admitted requests that have not ended. */
  admitted: number;
  maxQueue: number;
  running: number;
  batches: number;
  batchedUnits: number;
  overloaded: number;
  cancelled: number;
}

const DEFAULT_KEY = '';

export function cancelledError(reason?: unknown): AppError {
  const why = reason instanceof Error ? `: ${reason.message}` : typeof reason === 'string' ? `: ${reason}` : '';
  return new AppError(ErrorCode.CANCELLED, `request cancelled${why}`);
}

export class MicroBatcher<P, R> {
  /** FIFO per fairness key; keys in rotation order. */
  private readonly queues = new Map<string, Unit<P, R>[]>();
  private rotation: string[] = [];
  private turn = 0;
  private queued = 0;
  /** Units held by admissions (see `admit`). */
  private admitted = 0;
  /** Queued units of admitted requests: counted once, in `admitted`, not again as queued. */
  private queuedAdmitted = 0;
  private running = 0;
  private timer: NodeJS.Timeout | undefined;
  private closedWith: Error | undefined;
  private unitMs = NaN; // moving average of run time per unit, for retry hints
  private readonly counters = { batches: 0, batchedUnits: 0, overloaded: 0, cancelled: 0 };

  constructor(private readonly options: MicroBatcherOptions<P, R>) {
    if (!(options.maxQueue > 0)) throw new RangeError('maxQueue must be positive');
  }

  /** Whether `count` more units would be queued now (a cheap check before costly preparation). */
  hasRoom(count: number): boolean {
    return this.queued + count <= this.options.maxQueue;
  }

  /** OVERLOADED (counted) when `count` units would not be queued now, else null. */
  admissionError(count: number): AppError | null {
    if (this.hasRoom(count)) return null;
    this.counters.overloaded++;
    return this.overloadedError(count);
  }

  /**
   * Takes room for a request of `count` units (at most the whole queue) before any work is done
   * for it, or throws OVERLOADED (counted, with a retry hint). Room is taken against everything
   * queued and everything other admitted requests hold, so the requests in flight (being read,
   * decoded, queued or run) never hold more than the queue's size.
   */
  admit(count: number): Admission {
    if (this.closedWith) throw this.closedWith;
    const units = Math.max(1, Math.min(Math.ceil(count), this.options.maxQueue));
    if (this.queued - this.queuedAdmitted + this.admitted + units > this.options.maxQueue) {
      this.counters.overloaded++;
      throw this.overloadedError(units);
    }
    this.admitted += units;
    const room: HeldRoom = new HeldRoom(units, () => {
      if (!room.held) return;
      room.held = false;
      this.admitted -= room.units;
    });
    return room;
  }

  /**
   * Counts units queued under an admission. A request may queue more units than it was
   * admitted for (a bank of several segments is one unit per segment): it is not refused, but
   * its room grows to what it queues, so later admissions see the real load.
   */
  private queueUnder(room: HeldRoom, n: number): void {
    room.queued += n;
    this.queuedAdmitted += n;
    if (room.held && room.queued > room.units) {
      this.admitted += room.queued - room.units;
      room.units = room.queued;
    }
  }

  private dequeueUnder(room: HeldRoom | undefined): void {
    if (!room) return;
    room.queued--;
    this.queuedAdmitted--;
  }

  private overloadedError(requested: number): AppError {
    const slots = Math.max(1, this.running + this.options.freeSlots());
    const perUnit = Number.isFinite(this.unitMs) ? this.unitMs : 250;
    const ahead = Math.max(this.queued, this.admitted);
    const retryAfterMs = Math.min(30_000, Math.max(50, Math.round(((ahead + requested) * perUnit) / slots)));
    return new AppError(ErrorCode.OVERLOADED, 'the inference queue is full; retry later', {
      details: { retryAfterMs, queued: this.queued, admitted: this.admitted, maxQueue: this.options.maxQueue },
    });
  }

  /** Queues all payloads of one request (all or none) and resolves with their results in order. */
  submit(group: string, payloads: readonly P[], options: SubmitOptions = {}): Promise<R[]> {
    if (this.closedWith) return Promise.reject(this.closedWith);
    const { signal } = options;
    if (signal?.aborted) {
      this.counters.cancelled++;
      return Promise.reject(cancelledError(signal.reason));
    }
    if (payloads.length === 0) return Promise.resolve([]);
    if (payloads.length > this.options.maxQueue) {
      throw new RangeError(`a request of ${payloads.length} units can never fit a queue of ${this.options.maxQueue}`);
    }
    // work of an admitted request was given room before it started; anything else is checked now
    const room = options.admission instanceof HeldRoom && options.admission.held ? options.admission : undefined;
    const refused = room ? null : this.admissionError(payloads.length);
    if (refused) return Promise.reject(refused);

    const key = options.fairnessKey ?? DEFAULT_KEY;
    const promise = new Promise<R[]>((resolve, reject) => {
      const onAbort = () => {
        this.counters.cancelled++;
        this.fail(request, cancelledError(signal?.reason));
      };
      const request: Request<P, R> = {
        results: new Array(payloads.length),
        remaining: payloads.length,
        settled: false,
        units: new Set(),
        resolve,
        reject,
        cleanup: () => signal?.removeEventListener('abort', onAbort),
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      let queue = this.queues.get(key);
      if (!queue) {
        queue = [];
        this.queues.set(key, queue);
        this.rotation.push(key);
      }
      const now = performance.now();
      payloads.forEach((payload, index) => {
        const unit: Unit<P, R> = { group, admission: room, key, payload, index, enqueuedAt: now, request };
        queue.push(unit);
        request.units.add(unit);
      });
      this.queued += payloads.length;
      if (room) this.queueUnder(room, payloads.length);
    });
    this.pump();
    return promise;
  }

  /** Forms and starts batches while run slots are free. Call when a slot frees up. */
  pump(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    while (this.queued > 0 && this.options.freeSlots() > 0) {
      const pick = this.pickGroup(performance.now());
      if ('waitMs' in pick) {
        this.timer = setTimeout(() => this.pump(), Math.max(1, Math.ceil(pick.waitMs)));
        return;
      }
      this.start(pick.group, this.take(pick.group, pick.keyIndex));
    }
  }

  stats(): BatcherStats {
    return { queued: this.queued, admitted: this.admitted, maxQueue: this.options.maxQueue, running: this.running, ...this.counters };
  }

  /** Fails everything queued; running batches finish. Later submits fail with `error`. */
  close(error: Error): void {
    this.closedWith = error;
    if (this.timer) clearTimeout(this.timer);
    for (const queue of [...this.queues.values()]) {
      for (const unit of [...queue]) this.fail(unit.request, error);
    }
  }

  private pickGroup(now: number): { group: string; keyIndex: number } | { waitMs: number } {
    const groups = new Map<string, { count: number; oldest: number }>();
    for (const queue of this.queues.values()) {
      for (const u of queue) {
        const g = groups.get(u.group);
        if (g) {
          g.count++;
          g.oldest = Math.min(g.oldest, u.enqueuedAt);
        } else groups.set(u.group, { count: 1, oldest: u.enqueuedAt });
      }
    }
    const ready = (group: string) => {
      const g = groups.get(group)!;
      return g.count >= this.options.maxBatch(group) || now - g.oldest >= this.options.maxWaitMs;
    };
    // the key whose turn it is proposes the group of its oldest unit
    for (let i = 0; i < this.rotation.length; i++) {
      const keyIndex = (this.turn + i) % this.rotation.length;
      const head = this.queues.get(this.rotation[keyIndex]!)![0]!;
      if (ready(head.group)) return { group: head.group, keyIndex };
    }
    let waitMs = Infinity;
    for (const g of groups.values()) waitMs = Math.min(waitMs, g.oldest + this.options.maxWaitMs - now);
    return { waitMs };
  }

  /** Takes up to maxBatch units of `group`, one per key in turn, starting at `keyIndex`. */
  private take(group: string, keyIndex: number): Unit<P, R>[] {
    const max = this.options.maxBatch(group);
    const batch: Unit<P, R>[] = [];
    const keys = this.rotation.length;
    let exhausted = 0;
    for (let i = 0; batch.length < max && exhausted < keys; i++) {
      const key = this.rotation[(keyIndex + i) % keys]!;
      const queue = this.queues.get(key)!;
      const at = queue.findIndex((u) => u.group === group);
      if (at < 0) {
        exhausted++;
        continue;
      }
      exhausted = 0;
      batch.push(queue.splice(at, 1)[0]!);
    }
    this.queued -= batch.length;
    for (const unit of batch) this.dequeueUnder(unit.admission);
    // the next turn goes to the first key after the proposer that still has units
    const before = this.rotation;
    this.dropEmptyKeys();
    this.turn = 0;
    for (let j = 1; j <= keys; j++) {
      const at = this.rotation.indexOf(before[(keyIndex + j) % keys]!);
      if (at >= 0) {
        this.turn = at;
        break;
      }
    }
    return batch;
  }

  private start(group: string, batch: Unit<P, R>[]): void {
    this.running++;
    this.counters.batches++;
    this.counters.batchedUnits += batch.length;
    const started = performance.now();
    this.options.onBatch?.(group, batch.map((u) => started - u.enqueuedAt));
    let execution: Promise<R[]>;
    try {
      execution = this.options.execute(
        group,
        batch.map((u) => u.payload),
      );
    } catch (e) {
      execution = Promise.reject(e);
    }
    execution
      .then(
        (results) => {
          const perUnit = (performance.now() - started) / batch.length;
          this.unitMs = Number.isFinite(this.unitMs) ? 0.8 * this.unitMs + 0.2 * perUnit : perUnit;
          batch.forEach((unit, i) => this.complete(unit, results[i] as R));
        },
        (error: unknown) => {
          const e = error instanceof Error ? error : new Error(String(error));
          for (const unit of batch) this.fail(unit.request, e);
        },
      )
      .finally(() => {
        this.running--;
        this.pump();
      });
  }

  private complete(unit: Unit<P, R>, result: R): void {
    const request = unit.request;
    if (request.settled) return; // cancelled or failed meanwhile: the result is dropped
    request.units.delete(unit);
    request.results[unit.index] = result;
    if (--request.remaining === 0) {
      request.settled = true;
      request.cleanup();
      request.resolve(request.results);
    }
  }

  /** Settles a request with an error and removes its units that are still queued. */
  private fail(request: Request<P, R>, error: Error): void {
    if (request.settled) return;
    request.settled = true;
    request.cleanup();
    for (const unit of request.units) {
      const queue = this.queues.get(unit.key);
      const at = queue ? queue.indexOf(unit) : -1;
      if (at >= 0) {
        queue!.splice(at, 1);
        this.queued--;
        this.dequeueUnder(unit.admission);
      }
    }
    request.units.clear();
    const turnKey = this.rotation[this.turn];
    this.dropEmptyKeys();
    this.turn = Math.max(0, turnKey === undefined ? 0 : this.rotation.indexOf(turnKey));
    request.reject(error);
  }

  private dropEmptyKeys(): void {
    this.rotation = this.rotation.filter((k) => {
      if ((this.queues.get(k)?.length ?? 0) > 0) return true;
      this.queues.delete(k);
      return false;
    });
  }
}
