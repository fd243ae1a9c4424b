import type { RequestHandler } from 'express';
import { runInFairnessScope } from '../../core/fairness.ts';

/**
 * Runs the rest of each request in a fairness scope of its own (`core/fairness.ts`); the context
 * names the tenant once its key is verified, and shared resources (the database's connections)
 * take turns between tenants. Mounted right before the GraphQL handler: the body readers before
 * it call on from stream events, outside any scope opened earlier.
 */
export function fairnessScope(): RequestHandler {
  return (_req, _res, next) => runInFairnessScope(() => next());
}
