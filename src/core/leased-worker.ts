/**
 * The loop every background job runner shares: claim up to `concurrency` items from a
 * database-backed queue, run each under a lease renewed every `renewEveryMs`, poll when idle,
 * wake at once on `nudge()`, and on `stop()` abort what runs and wait for it to be handed back.
 * The queue (its table, its claim query, what an item does) is the caller's; this keeps one
 * way of claiming, renewing and stopping for description jobs and library jobs alike.
 */
import type { Logger } from './log.ts';

export interface LeasedWorkerOptions {
  /** Items run at once by this process. */
  readonly concurrency: number;
  /** How often an idle worker looks for work (other replicas' jobs, retries that came due). */
  readonly pollIntervalMs: number;
  /** How often a running item's lease is renewed (well under the lease). */
  readonly renewEveryMs: number;
}

/** What the loop needs of a queue: claims carry an id; `renew` answers false when the claim no longer holds. */
export interface LeasedQueue<C extends { readonly id: string }> {
  claim(limit: number): Promise<C[]>;
  renew(claim: C): Promise<boolean>;
  /**
   * Runs one claimed item. `stop` aborts when the worker stops (hand the item back); `lost`
   * aborts when a renewal found the claim gone (another worker, a cancellation): write nothing.
   * Errors are the queue's to record; one that escapes is logged.
   */
  process(claim: C, signals: { readonly stop: AbortSignal; readonly lost: AbortSignal; readonly any: AbortSignal }): Promise<void>;
}

export class LeasedWorker<C extends { readonly id: string }> {
  private running = false;
  private loopDone: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private readonly active = new Map<string, { abort: AbortController; done: Promise<void> }>();
  private readonly counters = { polls: 0, claimed: 0 };

  constructor(
    private readonly name: string,
    private readonly queue: LeasedQueue<C>,
    private readonly options: LeasedWorkerOptions,
    private readonly log: Logger,
  ) {}

  /** True between start() and stop(): an item aborted while this is false is being handed back. */
  get isRunning(): boolean {
    return this.running;
  }

  stats() {
    return { ...this.counters, active: this.active.size, running: this.running };
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loopDone = this.loop();
  }

  /** New work was queued: look now instead of at the next poll. */
  nudge(): void {
    this.wake?.();
  }

  /** Stops claiming, aborts the items in flight and waits for them to end (handed back by the queue). */
  async stop(): Promise<void> {
    this.running = false;
    this.wake?.();
    for (const a of this.active.values()) a.abort.abort();
    await this.loopDone;
    await Promise.allSettled([...this.active.values()].map((a) => a.done));
  }

  private async loop(): Promise<void> {
    while (this.running) {
      const free = this.options.concurrency - this.active.size;
      let claimedAll = false;
      if (free > 0) {
        try {
          this.counters.polls++;
          const claims = await this.queue.claim(free);
          this.counters.claimed += claims.length;
          claims.forEach((c) => this.track(c));
          claimedAll = claims.length === free && claims.length > 0;
        } catch (err) {
          this.log.warn({ err }, `${this.name} could not claim work`);
        }
      }
      if (!this.running) break;
      if (claimedAll && this.active.size < this.options.concurrency) continue;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, this.options.pollIntervalMs);
        function done() {
          clearTimeout(timer);
          resolve();
        }
        this.wake = done;
      });
      this.wake = undefined;
    }
  }

  private track(claim: C): void {
    const abort = new AbortController();
    const lost = new AbortController();
    const heartbeat = setInterval(() => {
      this.queue.renew(claim).then(
        (held) => {
          if (!held) lost.abort();
        },
        (err) => this.log.warn({ err, item: claim.id }, `${this.name} could not renew a lease`),
      );
    }, Math.max(50, this.options.renewEveryMs));
    const done = this.queue
      .process(claim, { stop: abort.signal, lost: lost.signal, any: AbortSignal.any([abort.signal, lost.signal]) })
      .catch((err) => this.log.error({ err, item: claim.id }, `${this.name}: an item failed unexpectedly`))
      .finally(() => {
        clearInterval(heartbeat);
        this.active.delete(claim.id);
        this.wake?.(); // a slot is free
      });
    this.active.set(claim.id, { abort, done });
  }
}
