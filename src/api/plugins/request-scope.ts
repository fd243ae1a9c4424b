import type { RequestHandler } from 'express';
import { runInFairnessScope } from '../../core/fairness.ts';
import { withLogFields } from '../../core/log.ts';
import { requestIdOf } from './request-id.ts';

/**
 * Runs the rest of the request in its own scope: every line logged on its behalf, by any layer,
 * carries its id (core/log.ts), and the database's connections take turns between tenants once
 * the context names the caller (core/fairness.ts). Mounted right before the GraphQL handler: the
 * body readers before it call on from stream events, outside any scope opened earlier.
 */
export function requestScope(): RequestHandler {
  return (_req, res, next) => withLogFields({ requestId: requestIdOf(res) }, () => runInFairnessScope(() => next()));
}
