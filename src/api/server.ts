import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { ApolloServer, type ApolloServerPlugin } from '@apollo/server';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import { expressMiddleware } from '@as-integrations/express5';
import { ApolloArmor } from '@escape.tech/graphql-armor';
import express from 'express';
import type { Config } from '../config.ts';
import type { Logger } from '../core/log.ts';
import type { Principal } from '../tenancy/principal.ts';
import { consoleRoutes } from './console.ts';
import { createContext, principalOf, type RequestContext } from './context.ts';
import { formatErrorFor, httpErrorHandler } from './errors.ts';
import { metricsRoute, type MetricsSource } from './metrics-endpoint.ts';
import { bodyDeadline } from './plugins/body-deadline.ts';
import { demoModelWarning } from './plugins/demo-model-warning.ts';
import { errorStatus } from './plugins/error-status.ts';
import { requestScope } from './plugins/request-scope.ts';
import { multipart } from './plugins/multipart.ts';
import { operationMetrics } from './plugins/operation-metrics.ts';
import { trackOperations } from './plugins/operations.ts';
import { queryNesting } from './plugins/query-nesting.ts';
import { queryCost } from './plugins/query-cost.ts';
import { rateLimit } from './plugins/rate-limit.ts';
import { requestId } from './plugins/request-id.ts';
import { textInputs } from './plugins/text-inputs.ts';
import { resolvers } from './resolvers/index.ts';
import type { Services } from './services.ts';

/** Tokens in one GraphQL document; far above any real query, well below a hostile one. */
const MAX_TOKENS = 10_000;
/**
 * Brackets open at once in a document, checked before parsing (the parser recurses on them);
 * far above any query within the depth limit, far below what overflows the stack.
 */
const MAX_NESTING = 128;
/**
 * The query cost (plugins/query-cost.ts): 2 an object, 1 a scalar, a field with `first: N` N
 * times its selection, N read from the document, a variable or the argument's default. No extra
 * factor per level: the cost is about the number of values an answer holds, and depth has a
 * limit of its own.
 */
export const COST_WEIGHTS = Object.freeze({ objectCost: 2, scalarCost: 1 });
const SCHEMA_FILE = path.resolve(import.meta.dirname, '..', '..', 'schema.graphql');

export interface HttpServerOptions {
  services: Services;
  log: Logger;
  limits: Pick<
    Config['limits'],
    | 'maxQueryDepth'
    | 'maxQueryCost'
    | 'maxRequestBytes'
    | 'maxImageBytes'
    | 'maxImagesPerRequest'
    | 'requestHeadersTimeoutMs'
    | 'requestBodyTimeoutMs'
    | 'maxOpenUploads'
    | 'maxOpenUploadsPerKey'
  >;
  /** How long a stop lets in-flight requests finish (config.http.shutdownTimeoutMs). */
  shutdownTimeoutMs: number;
  /** Operations are timed into these metrics; with a token, GET /metrics serves them on this port too. */
  metrics?: MetricsSource & {
    readonly token: string | undefined;
    observeOperation(operation: string, outcome: string, seconds: number): void;
  };
}

export interface HttpServer {
  readonly server: http.Server;
  /** Starts Apollo and listens; resolves with the bound address. */
  listen(host: string, port: number): Promise<{ host: string; port: number }>;
  /** Stops accepting, lets in-flight requests finish for up to `timeoutMs`, then cuts the rest. */
  close(timeoutMs: number): Promise<void>;
}

/** What uploads are counted against: the API key, the platform admin, or nobody. */
const callerKey = (p: Principal): string => (p.kind === 'tenant' ? `key:${p.keyId}` : p.kind);

/** The HTTP server: wiring only; each concern lives in a module of its own. */
export async function createHttpServer({ services, log, limits, shutdownTimeoutMs, metrics }: HttpServerOptions): Promise<HttpServer> {
  const app = express();
  app.disable('x-powered-by');
  const server = http.createServer(
    {
      headersTimeout: limits.requestHeadersTimeoutMs,
      // Node's limit on a whole request, behind `bodyDeadline` (which answers a late body first
      // and with our error): it also ends a request the server itself reads too slowly for long.
      requestTimeout: limits.requestHeadersTimeoutMs + 2 * limits.requestBodyTimeoutMs,
      // How often Node looks for requests over those limits (its default, 30 s, would let a
      // short limit run far over).
      connectionsCheckingInterval: Math.max(100, Math.min(30_000, Math.floor(limits.requestHeadersTimeoutMs / 4))),
    },
    app,
  );
  const deadline = bodyDeadline({ timeoutMs: limits.requestBodyTimeoutMs });

  const armor = new ApolloArmor({
    maxDepth: { n: limits.maxQueryDepth },
    // graphql-armor's cost rule sees the document only: a page size given in a variable or left
    // to its default counted once. `queryCost` (below) prices operations with their variables.
    costLimit: { enabled: false },
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
    plugins: [
      // graphql-armor ships CommonJS typings of Apollo's plugin type; the runtime objects are the same.
      ...(protection.plugins as ApolloServerPlugin<RequestContext>[]),
      ApolloServerPluginDrainHttpServer({ httpServer: server, stopGracePeriodMillis: shutdownTimeoutMs }),
      queryCost({ maxCost: limits.maxQueryCost, weights: COST_WEIGHTS }),
      textInputs(),
      errorStatus(),
      demoModelWarning({ randomWeights: () => services.engine.info.randomWeights }),
      ...(metrics ? [operationMetrics<RequestContext>({ observe: (...a) => metrics.observeOperation(...a) })] : []),
    ],
    formatError: formatErrorFor(log),
    logger: log,
  });

  app.use(requestId());
  app.use(deadline.handler);

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', async (_req, res) => {
    const { database } = await services.health.check();
    res.status(database ? 200 : 503).json({ ready: database, database });
  });
  if (metrics?.token) app.get('/metrics', metricsRoute(metrics, metrics.token));

  // The web console: static files on the same origin as /graphql, so it needs no CORS.
  app.use('/console', consoleRoutes());

  await apollo.start();
  const context = createContext(services, log, { maxImagesPerRequest: limits.maxImagesPerRequest });
  const operations = trackOperations({ handler: expressMiddleware(apollo, { context }) });
  app.use(
    '/graphql',
    rateLimit({
      tenantOf: async (req, res) => {
        const p = await principalOf(services, req, res);
        return p.kind === 'tenant' ? p.tenantId : undefined;
      },
      take: (tenantId) => services.limits.takeRequest(tenantId),
    }),
    express.json({ limit: limits.maxRequestBytes }),
    // Files are read straight from the request; one byte over the image limit lets the reader
    // tell "too large" from a complete file. Apollo's CSRF check asks multipart clients for a header.
    multipart({
      maxFileSize: limits.maxImageBytes + 1,
      maxFiles: limits.maxImagesPerRequest,
      maxFieldSize: limits.maxRequestBytes,
      maxOpen: limits.maxOpenUploads,
      maxOpenPerCaller: limits.maxOpenUploadsPerKey,
      callerOf: async (req, res) => callerKey(await principalOf(services, req, res)),
    }),
    queryNesting({ maxNesting: Math.max(MAX_NESTING, 4 * limits.maxQueryDepth) }),
    requestScope(),
    operations.handler,
  );
  app.use(deadline.afterCutOff);
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
