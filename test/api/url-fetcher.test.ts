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
