import { defaultMaxListeners, setMaxListeners } from 'node:events';
import type { ContextFunction } from '@apollo/server';
import type { ExpressContextFunctionArgument } from '@as-integrations/express5';
import type { Request, Response } from 'express';
import { isAppError } from '../core/errors.ts';
import { setFairnessKey } from '../core/fairness.ts';
import type { Logger } from '../core/log.ts';
import { requireTenant, type Principal } from '../tenancy/principal.ts';
import { toGraphQLError } from './errors.ts';
import { OverlayBudget } from '../tagging/heatmap-overlay.ts';
import { createLoaders, type Loaders } from './loaders.ts';
import { requestIdOf } from './plugins/request-id.ts';
import type { Services } from './services.ts';

/** Built once per request by the HTTP layer; resolvers read it and never change it. */
export interface RequestContext {
  readonly requestId: string;
  readonly principal: Principal;
  readonly services: Services;
  /** Lines written while the request runs carry its id (the log scope of server.ts). */
  readonly log: Logger;
  /** Aborted when the client goes away: queued inference for it is dropped. */
  readonly signal: AbortSignal;
  /** DataLoaders of the calling tenant (made on first use; tenant keys only). */
  loaders(): Loaders;
  /** The heat-map overlays this request may still draw. */
  readonly overlays: OverlayBudget;
}

/**
 * The caller of a request, authenticated once however many layers ask (the upload guard counts
 * uploads per key before the body is read; the context needs the caller too).
 */
export function principalOf(services: Pick<Services, 'auth'>, req: Request, res: Response): Promise<Principal> {
  const locals = res.locals as { principal?: Promise<Principal> };
  return (locals.principal ??= services.auth.authenticate(req.header('authorization')));
}

export interface ContextOptions {
  /** Images one `tagImages` may carry (config.limits.maxImagesPerRequest). */
  maxImagesPerRequest: number;
}

/**
 * Apollo's context function: authenticates the caller. A refused key fails here, before any
 * resolver runs; it is translated on the spot so Apollo answers with our code and status (401).
 */
export function createContext(services: Services, log: Logger, { maxImagesPerRequest }: ContextOptions): ContextFunction<[ExpressContextFunctionArgument], RequestContext> {
  // Every image of a request listens to its signal while its work is queued or fetched (at most
  // two listeners at a time): sixteen images are not a leak, though Node warns beyond ten.
  const maxSignalListeners = defaultMaxListeners + 2 * maxImagesPerRequest;
  return async ({ req, res }) => {
    const requestId = String(requestIdOf(res));
    const principal = await principalOf(services, req, res).catch((err: unknown) => {
      throw isAppError(err) ? toGraphQLError(err) : err;
    });
    // The database's connections take turns between tenants (api/plugins/request-scope.ts).
    if (principal.kind === 'tenant') setFairnessKey(principal.tenantId);
    // A client that disconnects before the answer frees its place in the inference queue.
    const gone = new AbortController();
    setMaxListeners(maxSignalListeners, gone.signal);
    res.once('close', () => {
      if (!res.writableFinished) gone.abort();
    });
    let loaders: Loaders | undefined;
    return {
      requestId,
      principal,
      services,
      log,
      signal: gone.signal,
      loaders: () => (loaders ??= createLoaders(services, requireTenant(principal).tenantId)),
      overlays: new OverlayBudget(),
    };
  };
}
