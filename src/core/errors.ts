/** Stable error codes: part of the public API (GraphQL answers carry them as `extensions.code`). */
export const ErrorCode = {
  UNAUTHENTICATED: 'UNAUTHENTICATED',
  FORBIDDEN: 'FORBIDDEN',
  NOT_FOUND: 'NOT_FOUND',
  BAD_USER_INPUT: 'BAD_USER_INPUT',
  CONFLICT: 'CONFLICT',
  BAD_IMAGE: 'BAD_IMAGE',
  IMAGE_TOO_LARGE: 'IMAGE_TOO_LARGE',
  UNSUPPORTED_FORMAT: 'UNSUPPORTED_FORMAT',
  PAYLOAD_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  OVERLOADED: 'OVERLOADED',
  /** Over a per-tenant rate; `details.retryAfterMs` says when to try again. */
  RATE_LIMITED: 'RATE_LIMITED',
  /** Over a per-tenant quota; `details.quota` names it (and `retryAfterMs` when it renews). */
  QUOTA_EXCEEDED: 'QUOTA_EXCEEDED',
  LLM_UNAVAILABLE: 'LLM_UNAVAILABLE',
  LLM_RATE_LIMITED: 'LLM_RATE_LIMITED',
  MODEL_UNAVAILABLE: 'MODEL_UNAVAILABLE',
  DATABASE_UNAVAILABLE: 'DATABASE_UNAVAILABLE',
  CANCELLED: 'CANCELLED',
  /**
   * A stored image's encoding was made by another image encoder (the model pack changed): it is
   * never scored by this one. `details.imageId` names the image.
   */
  ENCODER_CHANGED: 'ENCODER_CHANGED',
  INTERNAL_SERVER_ERROR: 'INTERNAL_SERVER_ERROR',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export interface AppErrorOptions {
  cause?: unknown;
  /** Machine-readable facts about the failure (a field name, a retry hint); never secrets. */
  details?: Record<string, unknown>;
}

/**
 * The one error type the services throw. It knows nothing of transports: the API layer
 * (src/api/errors.ts) turns it into a GraphQL error and an HTTP status; the CLI and the
 * workers read `code` and `details` directly.
 */
export class AppError extends Error {
  readonly code: ErrorCode;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: ErrorCode, message: string, options: AppErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AppError';
    this.code = code;
    this.details = options.details ?? {};
  }
}

export const isAppError = (e: unknown): e is AppError => e instanceof AppError;

export const notFound = (what: string) => new AppError(ErrorCode.NOT_FOUND, `${what} not found`);
export const conflict = (message: string) => new AppError(ErrorCode.CONFLICT, message);
export const badInput = (message: string, details?: Record<string, unknown>) =>
  new AppError(ErrorCode.BAD_USER_INPUT, message, { details });
