import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UrlFetcher } from '../../src/tagging/url-fetcher.ts';

// Only loopback is ever contacted: non-public addresses are checked with checkUrl(), which
// resolves and refuses without connecting.
const LOOPBACK = ['127.0.0.0/8'];
const base = { timeoutMs: 2_000, maxRedirects: 2, maxBytes: 1_000 };

describe('image URL fetching', () => {
  let server: http.Server;
  let origin: string;

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      const u = new URL(req.url!, 'http://x');
      if (u.pathname === '/image') return res.end(Buffer.alloc(100, 7));
      if (u.pathname === '/big') return res.end(Buffer.alloc(5_000, 1));
      if (u.pathname === '/big-chunked') {
        res.write(Buffer.alloc(800));
        return res.end(Buffer.alloc(800));
      }
      if (u.pathname === '/missing') return res.writeHead(404).end();
      if (u.pathname === '/redirect') return res.writeHead(302, { location: u.searchParams.get('to')! }).end();
      if (u.pathname === '/hang') return; // never answers
      res.writeHead(500).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => {
    server.closeAllConnections();
    return new Promise((r) => server.close(r));
  });

  it('fetches from allowed addresses', async () => {
    const f = new UrlFetcher({ ...base, allowRanges: LOOPBACK });
    expect((await f.fetch(`${origin}/image`)).length).toBe(100);
  });

  it('refuses loopback, private, link-local, metadata and reserved addresses by default', async () => {
    const f = new UrlFetcher(base);
    await expect(f.fetch(`${origin}/image`)).rejects.toMatchObject({ code: 'FORBIDDEN' });
    for (const url of [
      'http://10.1.2.3/x',
      'http://172.16.0.1/x',
      'http://192.168.1.1/x',
      'http://169.254.169.254/latest/meta-data',
      'http://100.64.0.1/x',
      'http://0.0.0.0/x',
      'http://[::1]/x',
      'http://[fd00::1]/x',
      'http://[fe80::1]/x',
      'http://[::ffff:127.0.0.1]/x',
      'http://224.0.0.1/x',
    ]) {
      await expect(f.checkUrl(url), url).rejects.toMatchObject({ code: 'FORBIDDEN' });
    }
    expect(await f.checkUrl('http://93.184.216.34/x')).toBe('93.184.216.34');
  });

  it('judges every IPv6 form that embeds an IPv4 address by the IPv4 rules', async () => {
    const f = new UrlFetcher(base);
    const hex = (a: number, b: number) => ((a << 8) | b).toString(16);
    /** The IPv6 forms of one IPv4 address. */
    const forms = (ip: string) => {
      const [a, b, c, d] = ip.split('.').map(Number) as [number, number, number, number];
      const high = hex(a, b);
      const low = hex(c, d);
      return {
        'IPv4-compatible, dotted': `::${ip}`,
        'IPv4-compatible, hex': `::${high}:${low}`,
        'IPv4-mapped': `::ffff:${ip}`,
        'IPv4-mapped, hex': `::ffff:${high}:${low}`,
        'IPv4-translated (SIIT)': `::ffff:0:${ip}`,
        'NAT64 well-known prefix': `64:ff9b::${ip}`,
        '6to4': `2002:${high}:${low}::1`,
        'Teredo client': `2001:0:4136:e378:8000:63bf:${hex(a ^ 0xff, b ^ 0xff)}:${hex(c ^ 0xff, d ^ 0xff)}`,
        // its client part: 93.184.216.34, inverted
        'Teredo server': `2001:0:${high}:${low}:8000:63bf:${hex(93 ^ 0xff, 184 ^ 0xff)}:${hex(216 ^ 0xff, 34 ^ 0xff)}`,
        'ISATAP': `2001:4860:1::5efe:${ip}`,
        'ISATAP, global IPv4 bit': `2001:4860:1::200:5efe:${ip}`,
      };
    };
    for (const ip of ['127.0.0.1', '10.0.0.1', '172.16.5.4', '192.168.0.1', '169.254.169.254', '100.64.0.1', '0.0.0.0', '224.0.0.1', '255.255.255.255']) {
      for (const [form, v6] of Object.entries(forms(ip))) {
        const url = `http://[${v6}]/x`;
        await expect(f.checkUrl(url), `${form} of ${ip}: ${url}`).rejects.toMatchObject({ code: 'FORBIDDEN' });
      }
    }
    // the issue's own example, as typed
    await expect(f.checkUrl('http://[::127.0.0.1]/')).rejects.toMatchObject({ code: 'FORBIDDEN' });
    // a public IPv4 address stays public in every form (a NAT64 gateway, a 6to4 relay reach it)
    for (const [form, v6] of Object.entries(forms('93.184.216.34'))) {
      const url = `http://[${v6}]/x`;
      expect(await f.checkUrl(url), `${form}: ${url}`).toBe(new URL(url).hostname.slice(1, -1));
    }
    // the local-use NAT64 prefix translates to networks of the operator's choosing
    await expect(f.checkUrl('http://[64:ff9b:1::5db8:d822]/x')).rejects.toMatchObject({ code: 'FORBIDDEN' });
    // an ISATAP identifier after a non-public prefix stays refused
    await expect(f.checkUrl('http://[fe80::5efe:93.184.216.34]/x')).rejects.toMatchObject({ code: 'FORBIDDEN' });
    // and DNS answers in these forms are judged the same way
    const dns = new UrlFetcher(base, async () => ['2002:7f00:1::1']);
    await expect(dns.checkUrl('http://sixtofour.test/x')).rejects.toMatchObject({ code: 'FORBIDDEN' });
  });

  it('checks every DNS answer, so a rebinding answer with one private address is refused', async () => {
    const f = new UrlFetcher(base, async (host) => (host === 'rebind.test' ? ['93.184.216.34', '10.0.0.5'] : ['93.184.216.34']));
    await expect(f.checkUrl('http://rebind.test/x')).rejects.toMatchObject({ code: 'FORBIDDEN' });
    expect(await f.checkUrl('http://public.test/x')).toBe('93.184.216.34');
  });

  it('refuses other schemes and credentials', async () => {
    const f = new UrlFetcher({ ...base, allowRanges: LOOPBACK });
    for (const url of ['file:///etc/passwd', 'ftp://127.0.0.1/x', 'gopher://127.0.0.1/', `http://user:pw@127.0.0.1/x`, 'not a url']) {
      await expect(f.fetch(url), url).rejects.toMatchObject({ code: 'BAD_USER_INPUT' });
    }
  });

  it('re-checks every redirect and bounds their number', async () => {
    const f = new UrlFetcher({ ...base, allowRanges: LOOPBACK });
    expect((await f.fetch(`${origin}/redirect?to=/image`)).length).toBe(100);
    // A redirect to an address outside the allowed ranges (IPv6 loopback here) is refused.
    await expect(f.fetch(`${origin}/redirect?to=${encodeURIComponent('http://[::1]:9/x')}`)).rejects.toMatchObject({ code: 'FORBIDDEN' });
    const loop = `${origin}/redirect?to=${encodeURIComponent(`/redirect?to=${encodeURIComponent(`/redirect?to=${encodeURIComponent('/image')}`)}`)}`;
    await expect(f.fetch(loop)).rejects.toMatchObject({ code: 'BAD_IMAGE' });
  });

  it('bounds the body size, the time taken, and reports HTTP errors', async () => {
    const f = new UrlFetcher({ ...base, timeoutMs: 300, allowRanges: LOOPBACK });
    await expect(f.fetch(`${origin}/big`)).rejects.toMatchObject({ code: 'IMAGE_TOO_LARGE' });
    await expect(f.fetch(`${origin}/big-chunked`)).rejects.toMatchObject({ code: 'IMAGE_TOO_LARGE' });
    await expect(f.fetch(`${origin}/hang`)).rejects.toMatchObject({ code: 'BAD_IMAGE' });
    await expect(f.fetch(`${origin}/missing`)).rejects.toMatchObject({ code: 'BAD_IMAGE' });
  });
});
