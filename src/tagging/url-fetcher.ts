import { lookup } from 'node:dns/promises';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import ipaddr from 'ipaddr.js';
import { AppError, ErrorCode, badInput } from '../core/errors.ts';

export interface UrlFetchOptions {
  readonly timeoutMs: number;
  readonly maxRedirects: number;
  readonly maxBytes: number;
  /** Tests only: address ranges to allow although they are not public (e.g. loopback). */
  readonly allowRanges?: readonly string[];
}

/** Resolves a host name to addresses; swappable so tests can simulate DNS rebinding. */
export type Resolver = (host: string) => Promise<string[]>;

const systemResolver: Resolver = async (host) => (await lookup(host, { all: true, verbatim: true })).map((a) => a.address);

/**
 * Fetches an image by URL without letting a caller reach the server's own network: only
 * http(s); every hop's host is resolved here and each address must be public unicast (no
 * loopback, private, link-local — cloud metadata lives there —, CGNAT, multicast or reserved);
 * the connection goes to the address that was checked, so a second DNS answer cannot
 * redirect it (rebinding); redirects are followed by hand, re-checked, and bounded; the body
 * is bounded in bytes and the whole fetch in time.
 */
export class UrlFetcher {
  constructor(
    private readonly options: UrlFetchOptions,
    private readonly resolve: Resolver = systemResolver,
  ) {}

  async fetch(rawUrl: string, signal?: AbortSignal): Promise<Uint8Array> {
    const deadline = AbortSignal.timeout(this.options.timeoutMs);
    const abort = signal ? AbortSignal.any([signal, deadline]) : deadline;
    let url = parseUrl(rawUrl);
    for (let hop = 0; ; hop++) {
      const address = await this.checkedAddress(url);
      const res = await request(url, address, abort, this.options.maxBytes).catch((e: unknown) => {
        if (deadline.aborted) throw badImageUrl(`fetching the image took longer than ${this.options.timeoutMs} ms`);
        throw e;
      });
      if (res.redirect) {
        if (hop >= this.options.maxRedirects) throw badImageUrl(`more than ${this.options.maxRedirects} redirects`);
        url = parseUrl(new URL(res.redirect, url).toString());
        continue;
      }
      return res.body!;
    }
  }

  /** The address a fetch of `rawUrl` would connect to; throws when the URL is not allowed. */
  checkUrl(rawUrl: string): Promise<string> {
    return this.checkedAddress(parseUrl(rawUrl));
  }

  private async checkedAddress(url: URL): Promise<string> {
    const host = url.hostname.replace(/^\[|\]$/g, '');
    const addresses = net.isIP(host) ? [host] : await this.resolve(host).catch(() => []);
    if (addresses.length === 0) throw badImageUrl(`cannot resolve ${host}`);
    // Every answer must be public: picking the first public one would let a mixed answer through.
    for (const a of addresses) {
      if (!this.isAllowed(a)) throw new AppError(ErrorCode.FORBIDDEN, `image URL host ${host} resolves to a non-public address`);
    }
    return addresses[0]!;
  }

  private isAllowed(address: string): boolean {
    let ip = ipaddr.parse(address);
    if (ip.kind() === 'ipv6' && (ip as ipaddr.IPv6).isIPv4MappedAddress()) ip = (ip as ipaddr.IPv6).toIPv4Address();
    for (const cidr of this.options.allowRanges ?? []) {
      const [range, bits] = ipaddr.parseCIDR(cidr);
      if (range.kind() === ip.kind() && ip.match([range, bits] as never)) return true;
    }
    return ip.range() === 'unicast';
  }
}

const badImageUrl = (message: string) => new AppError(ErrorCode.BAD_IMAGE, `image URL: ${message}`);

function parseUrl(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw badInput('image URL is not a valid URL', { field: 'url' });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw badInput('image URL must be http or https', { field: 'url' });
  if (url.username || url.password) throw badInput('image URL must not carry credentials', { field: 'url' });
  return url;
}

interface Response {
  redirect?: string;
  body?: Uint8Array;
}

function request(url: URL, address: string, signal: AbortSignal, maxBytes: number): Promise<Response> {
  const lib = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = lib.get(
      url,
      {
        signal,
        headers: { accept: 'image/*', 'user-agent': 'omnitag' },
        // Connect to the address that was checked; TLS still verifies the URL's host name.
        lookup: (_host, _opts, cb) => cb(null, [{ address, family: net.isIP(address) }] as never, undefined as never),
      },
      (res) => {
        const status = res.statusCode ?? 0;
        if (status >= 300 && status < 400 && res.headers.location) {
          res.resume();
          return resolve({ redirect: res.headers.location });
        }
        if (status !== 200) {
          res.resume();
          return reject(badImageUrl(`the server answered HTTP ${status}`));
        }
        const declared = Number(res.headers['content-length'] ?? 0);
        if (declared > maxBytes) {
          res.destroy();
          return reject(new AppError(ErrorCode.IMAGE_TOO_LARGE, `image URL: body of ${declared} bytes is over the ${maxBytes}-byte limit`));
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > maxBytes) {
            res.destroy();
            reject(new AppError(ErrorCode.IMAGE_TOO_LARGE, `image URL: body is over the ${maxBytes}-byte limit`));
          } else chunks.push(chunk);
        });
        res.on('end', () => resolve({ body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    req.on('error', (e) => reject(signal.aborted ? e : badImageUrl(`cannot fetch: ${(e as Error).message}`)));
  });
}
