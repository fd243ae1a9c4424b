import type { Logger } from '../log.ts';
import type { Principal } from '../tenancy/principal.ts';
import type { Services } from '../services.ts';

/** Built once per request by the HTTP layer; resolvers read it and never change it. */
export interface RequestContext {
  readonly requestId: string;
  readonly principal: Principal;
  readonly services: Services;
  readonly log: Logger;
}
