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
 * loopback, private, link-local — cloud metadata lives there —, CGNAT, multicast or reserved;
 * an IPv6 address that embeds an IPv4 one, in any form, by the IPv4 address's rules);
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
    const ip = ipaddr.parse(address);
    if (ip.kind() === 'ipv4') return this.isAllowedIp(ip);
    const v6 = ip as ipaddr.IPv6;
    // An IPv6 address that carries an IPv4 one reaches (or is translated to) that IPv4 address:
    // it is judged by the IPv4 rules, all of its IPv4 addresses.
    const embedded = embeddedIPv4(v6);
    if (embedded === 'opaque') return false;
    if (embedded.length > 0) return embedded.every((v4) => this.isAllowedIp(v4));
    // An ISATAP address is an ordinary prefix whose tunnel ends at an IPv4 address: both must pass.
    const tunnel = isatapIPv4(v6);
    return this.isAllowedIp(v6) && (!tunnel || this.isAllowedIp(tunnel));
  }

  private isAllowedIp(ip: ipaddr.IPv4 | ipaddr.IPv6): boolean {
    for (const cidr of this.options.allowRanges ?? []) {
      const [range, bits] = ipaddr.parseCIDR(cidr);
      if (range.kind() === ip.kind() && ip.match([range, bits] as never)) return true;
    }
    return ip.range() === 'unicast';
  }
}

const v4 = (high: number, low: number) => new ipaddr.IPv4([high >> 8, high & 0xff, low >> 8, low & 0xff]);

/**
 * The IPv4 addresses that an IPv6 address embeds, by every form that routes or translates to
 * them; 'opaque' for the local-use NAT64 prefix, whose networks choose where the IPv4 address
 * sits (and which translates to local networks by definition).
 *
 *  - `::a.b.c.d` IPv4-compatible (deprecated; `::` and `::1` are the unspecified and loopback
 *    addresses, not IPv4 ones), `::ffff:a.b.c.d` IPv4-mapped, `::ffff:0:a.b.c.d` IPv4-translated
 *    (SIIT), `64:ff9b::a.b.c.d` NAT64's well-known prefix: the last 32 bits;
 *  - `2002:AABB:CCDD::/48` 6to4: bits 16–47;
 *  - `2001:0:SSSS:SSSS:…:CCCC:CCCC` Teredo: the server, and the client (stored inverted).
 *
 * These prefixes say "an IPv4 address follows"; ISATAP's interface identifiers (isatapIPv4)
 * follow an ordinary prefix instead.
 */
export function embeddedIPv4(ip: ipaddr.IPv6): ipaddr.IPv4[] | 'opaque' {
  const [p0, p1, p2, p3, p4, p5, p6, p7] = ip.parts as [number, number, number, number, number, number, number, number];
  const last = v4(p6, p7);
  const zeroPrefix = p0 === 0 && p1 === 0 && p2 === 0 && p3 === 0;
  if (zeroPrefix && p4 === 0 && p5 === 0) return p6 === 0 && p7 <= 1 ? [] : [last];
  if (zeroPrefix && ((p4 === 0 && p5 === 0xffff) || (p4 === 0xffff && p5 === 0))) return [last];
  if (p0 === 0x64 && p1 === 0xff9b) {
    if (p2 === 1) return 'opaque'; // 64:ff9b:1::/48
    if (p2 === 0 && p3 === 0 && p4 === 0 && p5 === 0) return [last];
  }
  if (p0 === 0x2002) return [v4(p1, p2)];
  if (p0 === 0x2001 && p1 === 0) return [v4(p2, p3), v4(p6 ^ 0xffff, p7 ^ 0xffff)];
  return [];
}

/** The IPv4 tunnel end of an ISATAP address (`…:0:5efe:a.b.c.d`, `…:200:5efe:a.b.c.d`), if it is one. */
export function isatapIPv4(ip: ipaddr.IPv6): ipaddr.IPv4 | undefined {
  const [, , , , p4, p5, p6, p7] = ip.parts as number[];
  return (p4 === 0 || p4 === 0x200) && p5 === 0x5efe ? v4(p6!, p7!) : undefined;
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
