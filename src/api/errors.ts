import { unwrapResolverError } from '@apollo/server/errors';
import type { GraphQLFormattedError } from 'graphql';
import { type AppError, ErrorCode, isAppError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';

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
 * Apollo wraps errors thrown while building the context ("Context creation failed: ...") and
 * errors it does not recognise as its own GraphQLError; the AppError is further down the chain.
 */
function findAppError(error: unknown): AppError | undefined {
  for (let e = error, depth = 0; e && depth < 5; depth++) {
    if (isAppError(e)) return e;
    e = (e as { originalError?: unknown; cause?: unknown }).originalError ?? (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/**
 * Every error leaves with one of our codes. AppErrors and request errors keep their message;
 * anything unexpected is logged with the request id and reaches the client as
 * "Internal server error", never with a stack.
 */
export function formatErrorFor(log: Logger) {
  return (formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError => {
    const original = findAppError(error) ?? unwrapResolverError(error);
    if (isAppError(original)) {
      const { http: _http, ...extensions } = formatted.extensions ?? {};
      return { ...formatted, message: original.message, extensions: { ...extensions, code: original.code } };
    }
    const code = String(formatted.extensions?.code ?? '');
    const mapped = APOLLO_TO_APP[code];
    if (mapped) {
      return { message: formatted.message, locations: formatted.locations, path: formatted.path, extensions: { code: mapped, reason: code } };
    }
    log.error({ err: original, path: formatted.path }, 'unexpected error');
    return { message: 'Internal server error', path: formatted.path, extensions: { code: ErrorCode.INTERNAL_SERVER_ERROR } };
  };
}

/** A GraphQL-shaped error body for failures before GraphQL runs (body too large, bad JSON). */
export const errorBody = (code: ErrorCode, message: string, requestId?: string) => ({
  errors: [{ message, extensions: { code, ...(requestId ? { requestId } : {}) } }],
});

