/**
 * The one place where AppErrors become GraphQL errors and HTTP statuses. The services throw
 * AppError (code, message, details) and know nothing of transports; everything the client sees
 * of a failure is decided here.
 */
import { unwrapResolverError } from '@apollo/server/errors';
import type { ErrorRequestHandler } from 'express';
import { GraphQLError, type GraphQLFormattedError } from 'graphql';
import { type AppError, ErrorCode, isAppError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { requestIdOf } from './plugins/request-id.ts';

/** Codes answered with a status of their own; every other error keeps GraphQL's 200. */
const HTTP_STATUS: Partial<Record<ErrorCode, number>> = {
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  PAYLOAD_TOO_LARGE: 413,
  RATE_LIMITED: 429,
  QUOTA_EXCEEDED: 429,
  OVERLOADED: 503,
  DATABASE_UNAVAILABLE: 503,
};

export const httpStatusOf = (code: ErrorCode): number | undefined => HTTP_STATUS[code];

/**
 * The `Retry-After` header (whole seconds, rounded up) of an answer with these errors: the
 * longest wait any of them names, for refusals that say when to come back (RATE_LIMITED,
 * QUOTA_EXCEEDED); undefined when none does.
 */
export function retryAfterOfErrors(errors: readonly unknown[]): string | undefined {
  let ms: number | undefined;
  for (const error of errors) {
    const appError = findAppError(error);
    const wait = appError?.details.retryAfterMs;
    if ((appError?.code === ErrorCode.RATE_LIMITED || appError?.code === ErrorCode.QUOTA_EXCEEDED) && typeof wait === 'number') ms = Math.max(ms ?? 0, wait);
  }
  return ms === undefined ? undefined : String(Math.max(1, Math.ceil(ms / 1000)));
}

/** Apollo's own codes for requests it rejects before execution, mapped onto ours. */
const APOLLO_TO_APP: Record<string, ErrorCode> = {
  GRAPHQL_PARSE_FAILED: ErrorCode.BAD_USER_INPUT,
  GRAPHQL_VALIDATION_FAILED: ErrorCode.BAD_USER_INPUT,
  BAD_USER_INPUT: ErrorCode.BAD_USER_INPUT,
  BAD_REQUEST: ErrorCode.BAD_USER_INPUT,
  OPERATION_RESOLUTION_FAILURE: ErrorCode.BAD_USER_INPUT,
  PERSISTED_QUERY_NOT_SUPPORTED: ErrorCode.BAD_USER_INPUT,
  PERSISTED_QUERY_NOT_FOUND: ErrorCode.BAD_USER_INPUT,
};

/**
 * graphql-js wraps what a resolver throws (`originalError`), Apollo wraps errors thrown while
 * building the context, and an error may name its cause: the AppError is somewhere down the chain.
 */
export function findAppError(error: unknown): AppError | undefined {
  for (let e = error, depth = 0; e && depth < 5; depth++) {
    if (isAppError(e)) return e;
    e = (e as { originalError?: unknown }).originalError ?? (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** `extensions` of an AppError as clients see it: its code, then its details. */
function extensionsOf(error: AppError): Record<string, unknown> {
  const { code: _shadowed, ...details } = error.details;
  return { code: error.code, ...details };
}

/**
 * For errors thrown outside execution, where Apollo takes the status from `extensions.http`
 * (building the context: a refused key answers 401; a plugin refusing an operation before it
 * runs names its own, as validation errors answer 400). Even if this GraphQLError is not the
 * class Apollo checks against (two copies of graphql in one process), Apollo wraps it and
 * graphql-js copies its extensions.
 */
export function toGraphQLError(error: AppError, fallbackStatus?: number): GraphQLError {
  const status = httpStatusOf(error.code) ?? fallbackStatus;
  return new GraphQLError(error.message, {
    originalError: error,
    extensions: { ...extensionsOf(error), ...(status ? { http: { status } } : {}) },
  });
}

/**
 * The HTTP status a GraphQL answer with these errors gets, or undefined to leave Apollo's.
 * Several errors with statuses of their own: the last one's, as Apollo merges `extensions.http`.
 */
export function httpStatusOfErrors(errors: readonly unknown[]): number | undefined {
  let status: number | undefined;
  for (const error of errors) {
    const appError = findAppError(error);
    status = (appError && httpStatusOf(appError.code)) ?? status;
  }
  return status;
}

/**
 * Apollo's `formatError`. Every error leaves with one of our codes. AppErrors and request errors
 * keep their message; anything unexpected is logged and reaches the client as
 * "Internal server error", never with a stack.
 */
export function formatErrorFor(log: Logger) {
  return (formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError => {
    const appError = findAppError(error);
    if (appError) return { ...formatted, message: appError.message, extensions: extensionsOf(appError) };
    const code = String(formatted.extensions?.code ?? '');
    const mapped = APOLLO_TO_APP[code];
    if (mapped) {
      return { message: formatted.message, locations: formatted.locations, path: formatted.path, extensions: { code: mapped, reason: code } };
    }
    log.error({ err: unwrapResolverError(error), path: formatted.path }, 'unexpected error');
    return { message: 'Internal server error', path: formatted.path, extensions: { code: ErrorCode.INTERNAL_SERVER_ERROR } };
  };
}

/** A GraphQL-shaped error body for failures before GraphQL runs (body too large, bad JSON). */
export const errorBody = (code: ErrorCode, message: string, requestId?: string, details: Readonly<Record<string, unknown>> = {}) => ({
  errors: [{ message, extensions: { ...details, code, ...(requestId ? { requestId } : {}) } }],
});

export interface HttpErrorHandlerOptions {
  log: Logger;
  /** The JSON body limit, named in the answer to a body over it. */
  maxRequestBytes: number;
}

/** Express's last handler: failures before GraphQL runs still answer in GraphQL's error shape, with our codes. */
export function httpErrorHandler({ log, maxRequestBytes }: HttpErrorHandlerOptions): ErrorRequestHandler {
  return (err, _req, res, _next) => {
    const requestId = requestIdOf(res);
    const e = err as { type?: string; status?: number };
    if (isAppError(err)) {
      const retryAfter = retryAfterOfErrors([err]);
      if (retryAfter) res.setHeader('retry-after', retryAfter);
      res.status(httpStatusOf(err.code) ?? 400).json(errorBody(err.code, err.message, requestId, err.details));
    } else if (e.status === 413) {
      const message = e.type === 'entity.too.large' ? `request body over ${maxRequestBytes} bytes` : String((err as Error).message);
      res.status(413).json(errorBody(ErrorCode.PAYLOAD_TOO_LARGE, message, requestId));
    } else if (e.type === 'entity.parse.failed') {
      res.status(400).json(errorBody(ErrorCode.BAD_USER_INPUT, 'request body is not valid JSON', requestId));
    } else if (e.status && e.status >= 400 && e.status < 500) {
      res.status(e.status).json(errorBody(ErrorCode.BAD_USER_INPUT, String((err as Error).message), requestId));
    } else {
      log.error({ err, requestId }, 'unhandled HTTP error');
      res.status(500).json(errorBody(ErrorCode.INTERNAL_SERVER_ERROR, 'Internal server error', requestId));
    }
  };
}
