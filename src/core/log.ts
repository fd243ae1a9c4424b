import { pino, type Logger } from 'pino';

export type { Logger };

/** Structured JSON logs; secrets in headers never reach them. */
export function createLogger(level: string): Logger {
  return pino({
    level,
    base: { service: 'omnitag' },
    redact: { paths: ['req.headers.authorization', 'headers.authorization', '*.apiKey', '*.key'], censor: '[redacted]' },
  });
}
