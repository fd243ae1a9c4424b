import type { RequestHandler } from 'express';
import { withLogFields } from '../../core/log.ts';
import { requestIdOf } from './request-id.ts';

/**
 * Runs the rest of the request's handling in the log scope of its id (core/log.ts), so that
 * every line logged on its behalf, by any layer, names it (README: unexpected errors are
 * logged with the request id). Placed right before the handler that runs the operation: the
 * body parsers before it call on from stream events, which run outside any scope.
 */
export function logScope(): RequestHandler {
  return (_req, res, next) => withLogFields({ requestId: requestIdOf(res) }, () => next());
}
