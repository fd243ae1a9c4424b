import { AsyncLocalStorage } from 'node:async_hooks';
import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

type LogFields = Readonly<Record<string, unknown>>;

/** Fields of the work in progress (the API puts each request's id here). */
const scope = new AsyncLocalStorage<LogFields>();

/**
 * Runs `fn` so that every line a logger of createLogger writes while it runs, and while what it
 * starts runs (promises, timers), carries `fields` too: the API runs each GraphQL request in
 * the scope of its request id, and so every line logged on its behalf, by any layer, names it.
 */
export function withLogFields<T>(fields: LogFields, fn: () => T): T {
  return scope.run({ ...scope.getStore(), ...fields }, fn);
}

/** Structured JSON logs (stdout, or `destination`); secrets in headers never reach them. */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  const options = {
    level,
    base: { service: 'omnitag' },
    redact: { paths: ['req.headers.authorization', 'headers.authorization', '*.apiKey', '*.key'], censor: '[redacted]' },
    // A copy of the scope's fields (pino merges the line's own fields into it; they win).
    mixin: () => ({ ...scope.getStore() }),
  };
  return destination ? pino(options, destination) : pino(options);
}
