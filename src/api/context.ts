import type { Logger } from '../core/log.ts';
import type { Principal } from '../tenancy/principal.ts';
import type { Services } from './services.ts';
import type { Loaders } from './loaders.ts';

/** Built once per request by the HTTP layer; resolvers read it and never change it. */
export interface RequestContext {
  readonly requestId: string;
  readonly principal: Principal;
  readonly services: Services;
  readonly log: Logger;
  /** Aborted when the client goes away: queued inference for it is dropped. */
  readonly signal: AbortSignal;
  /** DataLoaders of the calling tenant (made on first use; tenant keys only). */
  loaders(): Loaders;
}
