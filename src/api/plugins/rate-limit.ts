import type { Request, RequestHandler, Response } from 'express';

export interface RateLimitOptions {
  /**
   * The calling tenant, or undefined for callers without one (the platform admin, anonymous
   * health checks); rejects for a refused key, which the context then answers (401).
   */
  tenantOf(req: Request, res: Response): Promise<string | undefined>;
  /** Spends one request of the tenant; rejects with RATE_LIMITED over its rate. */
  take(tenantId: string): Promise<void>;
}

/**
 * Counts every API request against its tenant's requests-per-second limit, before its body is
 * read: a tenant over its rate is answered 429 with `Retry-After` (by the HTTP error handler)
 * at the cost of one counter update, whatever it sent.
 */
export function rateLimit({ tenantOf, take }: RateLimitOptions): RequestHandler {
  return async (req, res, next) => {
    let tenantId: string | undefined;
    try {
      tenantId = await tenantOf(req, res);
    } catch {
      return next(); // the context answers a refused key
    }
    if (tenantId === undefined) return next();
    try {
      await take(tenantId);
    } catch (err) {
      return next(err);
    }
    next();
  };
}
