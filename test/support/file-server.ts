import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ServedRequest {
  path: string;
  range: string | null;
  ifRange: string | null;
  status: number;
  /** Body bytes written for this request (before any cut). */
  bytesSent: number;
}

export interface FileServer {
  readonly url: string;
  readonly requests: ServedRequest[];
  /** Serves `path` with these bytes (a new version gets a new ETag). */
  serve(path: string, file: string): void;
  /** The next request for `path` sends this many body bytes, then the connection is destroyed. */
  cutNextAfter(path: string, bytes: number): void;
  close(): Promise<void>;
}

/**
 * A static file server on a loopback port, as checkpoint hosts behave: ETag and Last-Modified,
 * `Range: bytes=N-` answered 206 with Content-Range when `If-Range` still matches (200 with the
 * whole file when it does not), 404 for unknown paths; and, on demand, a connection dropped midway.
 */
export async function startFileServer(): Promise<FileServer> {
  const files = new Map<string, { bytes: Buffer; etag: string; lastModified: string }>();
  const cuts = new Map<string, number>();
  const requests: ServedRequest[] = [];
  const server = http.createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const f = files.get(path);
    const record: ServedRequest = { path, range: req.headers.range ?? null, ifRange: (req.headers['if-range'] as string | undefined) ?? null, status: 0, bytesSent: 0 };
    requests.push(record);
    if (!f) {
      record.status = 404;
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    let start = 0;
    const m = /^bytes=(\d+)-$/.exec(record.range ?? '');
    const rangeApplies = m && (!record.ifRange || record.ifRange === f.etag || record.ifRange === f.lastModified);
    if (m && rangeApplies) {
      start = Number(m[1]);
      if (start >= f.bytes.length) {
        record.status = 416;
        res.writeHead(416, { 'content-range': `bytes */${f.bytes.length}` }).end();
        return;
      }
    }
    const body = f.bytes.subarray(start);
    record.status = start > 0 ? 206 : 200;
    res.writeHead(record.status, {
      'content-type': 'application/octet-stream',
      'content-length': String(body.length),
      'accept-ranges': 'bytes',
      etag: f.etag,
      'last-modified': f.lastModified,
      ...(start > 0 ? { 'content-range': `bytes ${start}-${f.bytes.length - 1}/${f.bytes.length}` } : {}),
    });
    const cut = cuts.get(path);
    if (cut !== undefined) {
      cuts.delete(path);
      const sent = body.subarray(0, cut);
      record.bytesSent = sent.length;
      res.write(sent, () => setTimeout(() => res.socket?.destroy(), 20));
      return;
    }
    record.bytesSent = body.length;
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  let version = 0;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    serve(path, file) {
      const bytes = readFileSync(file);
      const etag = `"${createHash('sha256').update(bytes).digest('hex').slice(0, 16)}-${++version}"`;
      files.set(path, { bytes, etag, lastModified: new Date(Date.UTC(2026, 0, 1, 0, 0, version)).toUTCString() });
    },
    cutNextAfter(path, bytes) {
      cuts.set(path, bytes);
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
