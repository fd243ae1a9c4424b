import { randomUUID } from 'node:crypto';
import type { RequestHandler, Response } from 'express';

export interface RequestIdOptions {
  /** Header read from the client and echoed on every answer. Default `x-request-id`. */
  header?: string;
}

/**
 * Gives every request an id for logs and error bodies: the client's own when it is a sane token
 * (so a caller can follow its request through our logs), a fresh UUID otherwise.
 */
export function requestId({ header = 'x-request-id' }: RequestIdOptions = {}): RequestHandler {
  return (req, res, next) => {
    const incoming = req.header(header);
    const id = incoming && /^[\w.-]{1,128}$/.test(incoming) ? incoming : randomUUID();
    res.setHeader(header, id);
    res.locals.requestId = id;
    next();
  };
}

/** The id `requestId()` gave this request (undefined before it ran). */
export const requestIdOf = (res: Response): string | undefined => res.locals.requestId as string | undefined;
