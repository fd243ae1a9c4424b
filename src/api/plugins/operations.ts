import type { RequestHandler } from 'express';

export interface OperationTrackingOptions {
  /** The handler whose runs are counted (Apollo's middleware). */
  handler: RequestHandler;
}

export interface TrackedOperations {
  /** `handler`, counting each run from start to finish. */
  readonly handler: RequestHandler;
  /** Resolves when none is running, or after `timeoutMs`, whichever comes first. */
  whenIdle(timeoutMs: number): Promise<void>;
}

/**
 * Counts GraphQL operations from start to finish, whether or not their client is still there:
 * one whose client hung up has no socket left for the HTTP server to wait for, yet may still
 * write (usage records, vocabulary edits), so shutdown waits for it here.
 */
export function trackOperations({ handler }: OperationTrackingOptions): TrackedOperations {
  let running = 0;
  const waiters: (() => void)[] = [];
  return {
    handler: async (req, res, next) => {
      running++;
      try {
        await handler(req, res, next);
      } finally {
        if (--running === 0) for (const wake of waiters.splice(0)) wake();
      }
    },
    whenIdle(timeoutMs) {
      if (running === 0) return Promise.resolve();
      return new Promise((resolve) => {
        const wake = () => {
          clearTimeout(timer);
          resolve();
        };
        // a waiter that timed out leaves the list, so repeated waits do not pile up
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(wake), 1);
          resolve();
        }, timeoutMs);
        waiters.push(wake);
      });
    },
  };
}
