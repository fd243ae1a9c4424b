import type { ErrorRequestHandler, Request, RequestHandler, Response } from 'express';
import { ErrorCode } from '../../core/errors.ts';
import { errorBody } from '../errors.ts';
import { requestIdOf } from './request-id.ts';

export interface BodyDeadlineOptions {
  /** How long a request's body may take to arrive, from its headers to its last byte. */
  timeoutMs: number;
}

export interface BodyDeadline {
  /** Starts each request's clock; mounted before anything that reads a body. */
  readonly handler: RequestHandler;
  /**
   * Mounted before the last error handler: what fails after a request was cut off (the JSON
   * reader, the upload reader, Apollo writing its answer) has no client left to tell.
   */
  readonly afterCutOff: ErrorRequestHandler;
}

const CUT_OFF = "bodyDeadlinePassed";

/**
 * Every request body must arrive within `timeoutMs` of its headers, JSON and multipart alike:
 * a client that sends part of a body and keeps the connection open is answered 408
 * (`BAD_USER_INPUT`) and its connection is closed, which also ends whatever was reading that
 * body (the upload reader fails, the resolver waiting for the file gets an error). A body that
 * the server is reading more slowly than it arrives (bytes wait in the request's buffer, say
 * while a vocabulary compiles before its upload is read) is not late: its clock starts again.
 * After an answer was sent the deadline still holds for the rest of the body being discarded:
 * the connection is then closed without a word.
 */
export function bodyDeadline({ timeoutMs }: BodyDeadlineOptions): BodyDeadline {
  return {
    handler: (req, res, next) => {
      if (req.complete) return next();
      let timer: NodeJS.Timeout | undefined;
      const socket = req.socket;
      const stop = () => {
        if (timer) clearTimeout(timer);
        timer = undefined;
        socket.off('close', stop);
      };
      const arm = () => {
        timer = setTimeout(expire, timeoutMs);
        timer.unref();
      };
      const expire = () => {
        timer = undefined;
        if (!req.complete && !req.destroyed && !socket.destroyed && req.readableLength > 0) return arm(); // the body waits on us, not on the client
        const late = !req.complete && !req.destroyed && !socket.destroyed;
        stop();
        if (late) cutOff(req, res, timeoutMs);
      };
      req.once('end', stop);
      req.once('close', stop);
      socket.once('close', stop); // an answered request is not ended when its connection goes
      res.once('finish', () => {
        if (req.complete) stop();
      });
      arm();
      next();
    },
    afterCutOff: (err, _req, res, next) => {
      if (res.locals[CUT_OFF] === true) return;
      next(err);
    },
  };
}

function cutOff(req: Request, res: Response, timeoutMs: number): void {
  res.locals[CUT_OFF] = true;
  const socket = req.socket;
  const close = () => void socket.destroy();
  if (res.headersSent) return close();
  const body = JSON.stringify(errorBody(ErrorCode.BAD_USER_INPUT, `the request body did not arrive within ${timeoutMs} ms`, requestIdOf(res)));
  res.writeHead(408, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), connection: 'close' });
  res.end(body, close);
  // A client that reads nothing either would keep the answer (and the socket) in the buffers.
  setTimeout(close, 1_000).unref();
}
