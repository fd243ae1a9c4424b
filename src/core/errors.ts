import { GraphQLError } from 'graphql';

/** Stable error codes: part of the public API (`extensions.code`). */
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
  LLM_UNAVAILABLE: 'LLM_UNAVAILABLE',
  LLM_RATE_LIMITED: 'LLM_RATE_LIMITED',
  MODEL_UNAVAILABLE: 'MODEL_UNAVAILABLE',
  DATABASE_UNAVAILABLE: 'DATABASE_UNAVAILABLE',
  CANCELLED: 'CANCELLED',
  INTERNAL_SERVER_ERROR: 'INTERNAL_SERVER_ERROR',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

const HTTP_STATUS: Partial<Record<ErrorCode, number>> = {
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  PAYLOAD_TOO_LARGE: 413,
  OVERLOADED: 503,
  DATABASE_UNAVAILABLE: 503,
};

export interface AppErrorOptions {
  cause?: unknown;
  /** Extra machine-readable details, merged into `extensions`. */
  details?: Record<string, unknown>;
}

/**
 * The one error type the services throw. It is a GraphQLError so resolvers can let it
 * through unchanged; outside GraphQL (CLI, workers) `code` is all callers need.
 */
export class AppError extends GraphQLError {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options: AppErrorOptions = {}) {
    const status = HTTP_STATUS[code];
    super(message, {
      originalError: options.cause instanceof Error ? options.cause : undefined,
      extensions: { code, ...(status ? { http: { status } } : {}), ...options.details },
    });
    this.name = 'AppError';
    this.code = code;
  }
}

export const isAppError = (e: unknown): e is AppError => e instanceof AppError;

export const notFound = (what: string) => new AppError(ErrorCode.NOT_FOUND, `${what} not found`);
export const conflict = (message: string) => new AppError(ErrorCode.CONFLICT, message);
export const badInput = (message: string, details?: Record<string, unknown>) =>
  new AppError(ErrorCode.BAD_USER_INPUT, message, { details });
