import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { ApolloServer, type ApolloServerPlugin } from '@apollo/server';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import { expressMiddleware } from '@as-integrations/express5';
import { ApolloArmor } from '@escape.tech/graphql-armor';
import express, { type RequestHandler } from 'express';
import { graphqlUploadExpress } from 'graphql-upload-minimal';
import { isAppError } from '../core/errors.ts';
import { resolvers } from './resolvers/index.ts';
import type { RequestContext } from './context.ts';
import { createLoaders, type Loaders } from './loaders.ts';
import { requireTenant } from '../tenancy/principal.ts';
import type { Services } from './services.ts';
import type { Logger } from '../core/log.ts';
import { formatErrorFor, httpErrorHandler, toGraphQLError } from './errors.ts';
import { errorStatus } from './plugins/error-status.ts';

/** Tokens in one GraphQL document; far above any real query, well below a hostile one. */
const MAX_TOKENS = 10_000;
const SCHEMA_FILE = path.resolve(import.meta.dirname, '..', '..', 'schema.graphql');

export interface HttpServer {
  readonly server: http.Server;
  /** Starts Apollo and listens; resolves with the bound address. */
  listen(host: string, port: number): Promise<{ host: string; port: number }>;
  /** Stops accepting, lets in-flight requests finish for up to `timeoutMs`, then cuts the rest. */
  close(timeoutMs: number): Promise<void>;
}

export async function createHttpServer(services: Services, log: Logger): Promise<HttpServer> {
  const { limits } = services.config;
  const app = express();
  app.disable('x-powered-by');
  const server = http.createServer(app);
  server.requestTimeout = 120_000;

  const armor = new ApolloArmor({
    maxDepth: { n: limits.maxQueryDepth },
    costLimit: { maxCost: limits.maxQueryCost },
    maxAliases: { n: 30 },
    maxDirectives: { n: 30 },
    // graphql-armor's token limit parses inside a plugin hook, where a syntax error becomes a
    // 500; graphql-js's own `maxTokens` parse option (below) answers 400.
    maxTokens: { enabled: false },
    blockFieldSuggestion: { enabled: true },
  });
  const protection = armor.protect();

  const apollo = new ApolloServer<RequestContext>({
    typeDefs: fs.readFileSync(SCHEMA_FILE, 'utf8'),
    resolvers: resolvers as never,
    csrfPrevention: true,
    parseOptions: { maxTokens: MAX_TOKENS },
    allowBatchedHttpRequests: false,
    includeStacktraceInErrorResponses: false,
    validationRules: protection.validationRules,
    // graphql-armor ships CommonJS typings of Apollo's plugin type; the runtime objects are the same.
    plugins: [...(protection.plugins as ApolloServerPlugin<RequestContext>[]), ApolloServerPluginDrainHttpServer({ httpServer: server, stopGracePeriodMillis: services.config.http.shutdownTimeoutMs }),
      errorStatus(),
    ],
    formatError: formatErrorFor(log),
    logger: log,
  });

  app.use((req, res, next) => {
    const incoming = req.header('x-request-id');
    const id = incoming && /^[\w.-]{1,128}$/.test(incoming) ? incoming : randomUUID();
    res.setHeader('x-request-id', id);
    res.locals.requestId = id;
    next();
  });

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', async (_req, res) => {
    const { database } = await services.health.check();
    res.status(database ? 200 : 503).json({ ready: database, database });
  });

  const operations = new RunningOperations();
  await apollo.start();
  app.use(
    '/graphql',
    express.json({ limit: limits.maxRequestBytes }),
    // GraphQL multipart requests (uploads). Files are read straight from the request; one byte
    // over the image limit lets the reader tell "too large" from a complete file. Apollo's CSRF
    // check asks multipart clients for a header.
    multipart(graphqlUploadExpress({ maxFileSize: limits.maxImageBytes + 1, maxFiles: limits.maxImagesPerRequest, maxFieldSize: limits.maxRequestBytes })),
    trackOperations(operations, expressMiddleware(apollo, {
      context: async ({ req, res }): Promise<RequestContext> => {
        const requestId = String(res.locals.requestId);
        // A refused key fails here, before any resolver: translated on the spot so Apollo
        // answers with our code and status (401).
        const principal = await services.auth.authenticate(req.header('authorization')).catch((err: unknown) => {
          throw isAppError(err) ? toGraphQLError(err) : err;
        });
        // A client that disconnects before the answer frees its place in the inference queue.
        const gone = new AbortController();
        res.once('close', () => {
          if (!res.writableFinished) gone.abort();
        });
        let loaders: Loaders | undefined;
        return {
          requestId,
          principal,
          services,
          log: log.child({ requestId }),
          signal: gone.signal,
          loaders: () => (loaders ??= createLoaders(services, requireTenant(principal).tenantId)),
        };
      },
    })),
  );

  app.use(httpErrorHandler({ log, maxRequestBytes: limits.maxRequestBytes }));

  return {
    server,
    async listen(host, port) {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          resolve();
        });
      });
      const addr = server.address();
      if (!addr || typeof addr === 'string') throw new Error('HTTP server has no TCP address');
      return { host: addr.address, port: addr.port };
    },
    async close(timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      const cut = setTimeout(() => server.closeAllConnections(), timeoutMs);
      cut.unref();
      try {
        // Apollo's drain plugin closes the server: idle keep-alive sockets now, busy ones when done.
        await apollo.stop();
      } finally {
        clearTimeout(cut);
      }
      // An operation whose client hung up has no socket left to wait for, yet may still write
      // (usage records, vocabulary edits): the services it uses stay up until it ends.
      await operations.whenIdle(Math.max(0, deadline - Date.now()));
    },
  };
}

/** Counts GraphQL operations from start to finish, whether or not their client is still there. */
class RunningOperations {
  private running = 0;
  private waiters: (() => void)[] = [];

  begin(): () => void {
    this.running++;
    return () => {
      if (--this.running === 0) for (const wake of this.waiters.splice(0)) wake();
    };
  }

  /** Resolves when none is running, or after `timeoutMs`, whichever comes first. */
  whenIdle(timeoutMs: number): Promise<void> {
    if (this.running === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}

function trackOperations(operations: RunningOperations, handler: RequestHandler): RequestHandler {
  return async (req, res, next) => {
    const end = operations.begin();
    try {
      await handler(req, res, next);
    } finally {
      end();
    }
  };
}

/**
 * graphql-upload-minimal's middleware for multipart requests only, with three guards:
 *  - it listens for only the first 'error' of its multipart parser, and busboy can emit a second
 *    for the same broken form ("Malformed part header", then "Unexpected end of form"); left
 *    unhandled, that one would end the process. The parser it pipes the request into gets a
 *    listener of last resort; the first error still reaches the library, which answers it;
 *  - the parser's own errors are plain Errors: they are the client's (400), not ours (500);
 *  - files are read straight from the request, so one answered before all its files were read
 *    (an unknown vocabulary, say) still has body on the socket: it is discarded, so the
 *    connection can carry the client's next request.
 */
function multipart(handler: RequestHandler): RequestHandler {
  return (req, res, next) => {
    if (!req.is('multipart/form-data')) return next();
    const pipe = req.pipe.bind(req);
    req.pipe = ((destination: NodeJS.WritableStream, options?: { end?: boolean }) => {
      destination.on('error', () => {});
      return pipe(destination, options);
    }) as typeof req.pipe;
    res.once('finish', () => {
      if (!req.readableEnded) {
        req.unpipe();
        req.resume();
      }
    });
    handler(req, res, (err?: unknown) => {
      if (err === undefined || err === 'route' || err === 'router' || typeof (err as { status?: unknown }).status === 'number') return next(err);
      next(Object.assign(new Error(`malformed multipart request: ${String((err as Error).message)}`), { status: 400 }));
    });
  };
}
