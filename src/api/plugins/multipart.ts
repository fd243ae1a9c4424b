import type { RequestHandler } from 'express';
import { graphqlUploadExpress } from 'graphql-upload-minimal';

export interface MultipartOptions {
  /** Largest file accepted, in bytes. */
  maxFileSize: number;
  /** Most files in one request. */
  maxFiles: number;
  /** Largest non-file field (`operations`, `map`), in bytes. */
  maxFieldSize: number;
}

/**
 * GraphQL multipart requests (uploads, graphql-upload-minimal), for multipart requests only,
 * with three guards:
 *  - the library listens for only the first 'error' of its multipart parser, and busboy can emit
 *    a second for the same broken form ("Malformed part header", then "Unexpected end of form");
 *    left unhandled, that one would end the process. The parser it pipes the request into gets a
 *    listener of last resort; the first error still reaches the library, which answers it;
 *  - the parser's own errors are plain Errors: they are the client's (400), not ours (500);
 *  - files are read straight from the request, so one answered before all its files were read
 *    (an unknown vocabulary, say) still has body on the socket: it is discarded, so the
 *    connection can carry the client's next request.
 */
export function multipart(options: MultipartOptions): RequestHandler {
  const upload = graphqlUploadExpress(options);
  return (req, res, next) => {
    if (!req.is('multipart/form-data')) return next();
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
