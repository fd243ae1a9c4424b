/**
 * Generic guards for calls to something that can be slow or down: a counting semaphore, a
 * circuit breaker, and the reading of a server's Retry-After. They know nothing of what they
 * guard; callers turn their errors into their own.
 */

/** Counting semaphore with FIFO waiters that leave the queue when their signal aborts. */
export class Semaphore {
  private free: number;
  private readonly waiters: (() => void)[] = [];

  constructor(size: number) {
    this.free = size;
  }

  /** Resolves with a release function (calling it twice frees one slot); rejects with the signal's reason when aborted first. */
  acquire(signal?: AbortSignal): Promise<() => void> {
    const release = once(() => {
      const next = this.waiters.shift();
      if (next) next();
      else this.free++;
    });
    if (this.free > 0) {
      this.free--;
      return Promise.resolve(release);
    }
    return new Promise((resolve, reject) => {
      const grant = () => {
        signal?.removeEventListener('abort', onAbort);
        resolve(release);
      };
      const onAbort = () => {
        const i = this.waiters.indexOf(grant);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(signal?.reason);
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(grant);
    });
  }
}

/** Thrown by `FairSemaphore.acquire` when no slot came free in time. */
export class WaitTimeoutError extends Error {
  constructor(readonly timeoutMs: number) {
    super(`no slot came free within ${timeoutMs} ms`);
    this.name = 'WaitTimeoutError';
  }
}

/**
 * A counting semaphore whose waiters take turns by key (a tenant): a freed slot goes to the
 * longest-waiting caller of the next key in rotation, so one key with many waiters delays
 * another key's caller by one turn, not by its whole queue. Every wait is bounded.
 */
export class FairSemaphore {
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

  /**
   * Resolves with a release function (a second call does nothing) once a slot is this caller's;
   * rejects with WaitTimeoutError after `timeoutMs` without one.
   */
  acquire(key: string, timeoutMs: number): Promise<() => void> {
    const release = once(() => this.handOver());
    if (this.free > 0) {
      this.free--;
      return Promise.resolve(release);
    }
    return new Promise((resolve, reject) => {
      const waiter = {
        grant: () => {
          clearTimeout(timer);
          resolve(release);
        },
      };
      const timer = setTimeout(() => {
        const queue = this.queues.get(key);
        const at = queue ? queue.indexOf(waiter) : -1;
        if (at < 0) return;
        queue!.splice(at, 1);
        if (queue!.length === 0) this.queues.delete(key);
        this.waiters--;
        reject(new WaitTimeoutError(timeoutMs));
      }, timeoutMs);
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
