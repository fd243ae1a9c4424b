/**
 * Generic guards for calls to something that can be slow or down: a counting semaphore, a
 * circuit breaker, and the reading of a server's Retry-After. They know nothing of what they
 * guard; callers turn their errors into their own.
 */

/** Thrown by `Semaphore.acquire` when no slot came free in time. */
export class WaitTimeoutError extends Error {
  constructor(readonly timeoutMs: number) {
    super(`no slot came free within ${timeoutMs} ms`);
    this.name = 'WaitTimeoutError';
  }
}

export interface AcquireOptions {
  /** Whose turn it is (a tenant): waiters of one key are served first come, first served. */
  readonly key?: string;
  /** Gives up with WaitTimeoutError after this long without a slot. */
  readonly timeoutMs?: number;
  /** Gives up with the signal's reason when it aborts first. */
  readonly signal?: AbortSignal;
}

/**
 * A counting semaphore whose waiters take turns by key (a tenant): a freed slot goes to the
 * longest-waiting caller of the next key in rotation, so one key with many waiters delays
 * another key's caller by one turn, not by its whole queue. Callers without a key share one
 * queue (plain FIFO). A waiter leaves the queue when its time runs out or its signal aborts.
 */
export class Semaphore {
  private free: number;
  /** Keys with waiters, in turn order (a Map keeps insertion order), each with its FIFO. */
  private readonly queues = new Map<string, { grant(): void }[]>();
  private waiters = 0;

  constructor(size: number) {
    if (!(Number.isInteger(size) && size > 0)) throw new RangeError('size must be a positive integer');
    this.free = size;
  }

  /** Callers waiting for a slot. */
  get waiting(): number {
    return this.waiters;
  }

  /** Resolves with a release function (a second call does nothing) once a slot is this caller's. */
  acquire({ key = '', timeoutMs, signal }: AcquireOptions = {}): Promise<() => void> {
    const release = once(() => this.handOver());
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.free > 0) {
      this.free--;
      return Promise.resolve(release);
    }
    return new Promise((resolve, reject) => {
      const leave = (reason: unknown) => {
        const queue = this.queues.get(key);
        const at = queue ? queue.indexOf(waiter) : -1;
        if (at < 0) return;
        queue!.splice(at, 1);
        if (queue!.length === 0) this.queues.delete(key);
        this.waiters--;
        done();
        reject(reason);
      };
      const onAbort = () => leave(signal!.reason);
      const timer = timeoutMs === undefined ? undefined : setTimeout(() => leave(new WaitTimeoutError(timeoutMs)), timeoutMs);
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      const waiter = {
        grant: () => {
          done();
          resolve(release);
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      const queue = this.queues.get(key);
      if (queue) queue.push(waiter);
      else this.queues.set(key, [waiter]);
      this.waiters++;
    });
  }

  private handOver(): void {
    const next = this.queues.entries().next();
    if (next.done) {
      this.free++;
      return;
    }
    const [key, queue] = next.value;
    const waiter = queue.shift()!;
    this.waiters--;
    // served: the key goes to the back of the rotation, or leaves it
    this.queues.delete(key);
    if (queue.length > 0) this.queues.set(key, queue);
    waiter.grant();
  }
}

const once = (fn: () => void) => {
  let done = false;
  return () => {
    if (done) return;
    done = true;
    fn();
  };
};

/** Thrown by `CircuitBreaker.check` while the breaker is open. */
export class CircuitOpenError extends Error {
  constructor(
    /** When the next trial call will be let through. */
    readonly retryAfterMs: number,
  ) {
    super('circuit breaker open');
    this.name = 'CircuitOpenError';
  }
}

/**
 * Opens after `threshold` consecutive failures: calls then fail at once with CircuitOpenError
 * for `cooldownMs`, after which one trial call decides whether it closes again. Every call let
 * through must end in `success`, `failure` or `abandon`, or a trial would hold the breaker
 * half-open for good.
 */
export class CircuitBreaker {
  private failures = 0;
  private openedAt = 0;
  private trialInFlight = false;
  state: 'closed' | 'open' | 'half-open' = 'closed';

  constructor(
    private readonly threshold: number,
    private readonly cooldownMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  check(): void {
    if (this.state === 'closed') return;
    const waited = this.now() - this.openedAt;
    if (this.state === 'open' && waited >= this.cooldownMs) {
      this.state = 'half-open';
      this.trialInFlight = false;
    }
    if (this.state === 'half-open' && !this.trialInFlight) {
      this.trialInFlight = true;
      return;
    }
    throw new CircuitOpenError(Math.max(0, this.cooldownMs - waited));
  }

  success(): void {
    this.failures = 0;
    this.state = 'closed';
    this.trialInFlight = false;
  }

  /**
   * A call that ended without telling whether the guarded thing works (cancelled, or told to
   * wait): the failure count stays, and an open breaker's trial slot is free for the next call.
   */
  abandon(): void {
    if (this.state === 'half-open') this.trialInFlight = false;
  }

  failure(): void {
    this.failures++;
    if (this.state === 'half-open' || this.failures >= this.threshold) {
      this.state = 'open';
      this.openedAt = this.now();
      this.trialInFlight = false;
    }
  }
}

/** Retry-After in ms from `retry-after-ms`, or `retry-after` as seconds or an HTTP date. */
export function retryAfterMs(headers: Headers | undefined, now = Date.now()): number | undefined {
  if (!headers) return undefined;
  const ms = Number(headers.get('retry-after-ms'));
  if (headers.get('retry-after-ms') && Number.isFinite(ms) && ms >= 0) return Math.ceil(ms);
  const value = headers.get('retry-after');
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return Math.ceil(seconds * 1000);
  const date = Date.parse(value);
  return Number.isFinite(date) ? Math.max(0, date - now) : undefined;
}
