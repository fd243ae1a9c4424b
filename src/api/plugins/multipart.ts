import type { Request, RequestHandler, Response } from 'express';
import { graphqlUploadExpress } from 'graphql-upload-minimal';
import { ErrorCode } from '../../core/errors.ts';
import { errorBody, httpStatusOf } from '../errors.ts';
import { requestIdOf } from './request-id.ts';

export interface MultipartOptions {
  /** Largest file accepted, in bytes. */
  maxFileSize: number;
  /** Most files in one request. */
  maxFiles: number;
  /** Largest non-file field (`operations`, `map`), in bytes. */
  maxFieldSize: number;
  /** Multipart requests open at once, in all. */
  maxOpen: number;
  /** Multipart requests open at once per caller (per API key). */
  maxOpenPerCaller: number;
  /**
   * Whom an upload is counted against, from the request's key (a stable name of the key);
   * rejects with the AppError a refused key gets (UNAUTHENTICATED, DATABASE_UNAVAILABLE).
   */
  callerOf(req: Request, res: Response): Promise<string>;
}

/** How soon a refused upload may try again: open uploads end within the body deadline, most far sooner. */
const RETRY_AFTER_MS = 1_000;

/**
 * GraphQL multipart requests (uploads, graphql-upload-minimal), for multipart requests only.
 *
 * Admission: an upload's files are read straight from the request while the operation runs, so
 * each one holds a connection, a parser and the resolver waiting on its file for as long as its
 * body takes to arrive (at most the body deadline, `bodyDeadline`). How many may be open is
 * bounded in all and per caller; one more is answered `OVERLOADED` (503, `retryAfterMs`) at
 * once, before any of its body is read, and its connection is closed. The caller is the API
 * key, authenticated here, before the body: Apollo's context authenticates only after the
 * `operations` and `map` fields have been read, too late to refuse a stalled upload, and
 * counting by the raw header instead would let anyone fill the global bound with made-up keys.
 * A refused key is answered (401) before its body is read, counted nowhere, and its connection
 * closed. The key's second check, in the context, is answered by the authenticator's cache.
 * An upload stays open until its answer is sent and its body has arrived (or its connection
 * is gone).
 *
 * Three guards around the library:
 *  - it listens for only the first 'error' of its multipart parser, and busboy can emit a
 *    second for the same broken form ("Malformed part header", then "Unexpected end of form");
 *    left unhandled, that one would end the process. The parser it pipes the request into gets
 *    a listener of last resort; the first error still reaches the library, which answers it;
 *  - the parser's own errors are plain Errors: they are the client's (400), not ours (500);
 *  - files are read straight from the request, so one answered before all its files were read
 *    (an unknown vocabulary, say) still has body on the socket: it is discarded, so the
 *    connection can carry the client's next request.
 */
export function multipart(options: MultipartOptions): RequestHandler {
  const upload = graphqlUploadExpress(options);
  const open = new Map<string, number>();
  let total = 0;

  const admit = (caller: string): (() => void) | undefined => {
    const mine = open.get(caller) ?? 0;
    if (total >= options.maxOpen || mine >= options.maxOpenPerCaller) return undefined;
    total++;
    open.set(caller, mine + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      total--;
      const left = (open.get(caller) ?? 1) - 1;
      if (left > 0) open.set(caller, left);
      else open.delete(caller);
    };
  };

  return async (req, res, next) => {
    if (!req.is('multipart/form-data')) return next();
    let caller: string;
    try {
      caller = await options.callerOf(req, res);
    } catch (err) {
      res.setHeader('connection', 'close');
      return next(err);
    }
    if (req.destroyed || res.writableEnded || res.destroyed || req.socket.destroyed) return; // the client left meanwhile
    const release = admit(caller);
    if (!release) {
      const perCaller = (open.get(caller) ?? 0) >= options.maxOpenPerCaller;
      const message = perCaller
        ? `too many uploads open for this key (at most ${options.maxOpenPerCaller}); try again later`
        : `too many uploads open (at most ${options.maxOpen}); try again later`;
      return refuse(res, message, perCaller ? 'perKey' : 'total');
    }
    whenDone(req, res, release);

    const pipe = req.pipe.bind(req);
    req.pipe = ((destination: NodeJS.WritableStream, pipeOptions?: { end?: boolean }) => {
      destination.on('error', () => {});
      return pipe(destination, pipeOptions);
    }) as typeof req.pipe;
    res.once('finish', () => {
      if (!req.readableEnded) {
        req.unpipe();
        req.resume();
      }
    });
    upload(req, res, (err?: unknown) => {
      if (err === undefined || err === 'route' || err === 'router' || typeof (err as { status?: unknown }).status === 'number') return next(err);
      next(Object.assign(new Error(`malformed multipart request: ${String((err as Error).message)}`), { status: 400 }));
    });
  };
}

/**
 * Calls `done` once the answer is over (sent or cut off) and no more of the body can come. The
 * socket is watched too: once a request has been answered Node no longer ends it when its
 * connection goes, so a body being discarded would otherwise never say it is over.
 */
function whenDone(req: Request, res: Response, done: () => void): void {
  const socket = req.socket;
  let answered = false;
  let bodyOver = false;
  let finished = false;
  const check = () => {
    if (finished || !answered || !(bodyOver || req.complete)) return;
    finished = true;
    socket.off('close', gone);
    done();
  };
  const gone = () => {
    answered = bodyOver = true;
    check();
  };
  const over = () => {
    bodyOver = true;
    check();
  };
  res.once('close', () => {
    answered = true;
    check();
  });
  req.once('end', over);
  req.once('close', over);
  socket.once('close', gone);
}

function refuse(res: Response, message: string, limit: 'perKey' | 'total'): void {
  const body = errorBody(ErrorCode.OVERLOADED, message, requestIdOf(res));
  Object.assign(body.errors[0]!.extensions, { retryAfterMs: RETRY_AFTER_MS, limit });
  res.setHeader('connection', 'close');
  res.setHeader('retry-after', String(Math.ceil(RETRY_AFTER_MS / 1000)));
  res.status(httpStatusOf(ErrorCode.OVERLOADED) ?? 503).json(body);
}
