import { timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { RequestHandler } from 'express';

/** What serves the metrics: the registry's text and its content type. */
export interface MetricsSource {
  readonly contentType: string;
  render(): Promise<string>;
}

const sameSecret = (a: string, b: string) => {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
};

/**
 * GET /metrics on the API port, for a scraper that sends `Authorization: Bearer <token>`
 * (OMNITAG_METRICS_TOKEN); anyone else gets 401, and the tenants' keys do not open it.
 */
export function metricsRoute(source: MetricsSource, token: string): RequestHandler {
  return async (req, res) => {
    const m = /^Bearer (.+)$/.exec(req.header('authorization') ?? '');
    if (!m || !sameSecret(m[1]!, token)) {
      res.status(401).setHeader('www-authenticate', 'Bearer').type('text/plain').send('metrics need the metrics token\n');
      return;
    }
    res.setHeader('content-type', source.contentType);
    res.send(await source.render());
  };
}

/** A server of its own for /metrics (OMNITAG_METRICS_PORT), to keep apart from the API by network rules. */
export interface MetricsServer {
  listen(host: string, port: number): Promise<{ host: string; port: number }>;
  close(): Promise<void>;
}

export function createMetricsServer(source: MetricsSource): MetricsServer {
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    source.render().then(
      (text) => res.writeHead(200, { 'content-type': source.contentType }).end(text),
      () => res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics failed\n'),
    );
  });
  return {
    listen: (host, port) =>
      new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          const addr = server.address() as { address: string; port: number };
          resolve({ host: addr.address, port: addr.port });
        });
      }),
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
