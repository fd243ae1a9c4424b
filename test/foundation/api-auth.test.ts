import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateApiKey } from '../../src/tenancy/api-keys.ts';
import { databaseMode } from '../support/database.ts';
import { errorCodes, gql, PLATFORM_KEY, startTestApp, type TestApp } from '../support/app.ts';

const CREATE = 'mutation($input: CreateTenantInput!) { createTenant(input: $input) { id name slug createdAt } }';
const LIST = 'query($first: Int, $after: String) { tenants(first: $first, after: $after) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node { slug } } } }';

describe(`GraphQL foundation over HTTP (${databaseMode} database)`, () => {
  let t: TestApp;
  let clientKey: string;
  let revokedKey: string;

  beforeAll(async () => {
    t = await startTestApp();
    // Tenant keys are issued through the API in a later slice; here they are written directly.
    const prisma = t.app.db.prisma;
    const tenant = await prisma.tenant.create({ data: { name: 'Keyholder', slug: 'keyholder' } });
    const client = generateApiKey();
    const revoked = generateApiKey();
    await prisma.apiKey.createMany({
      data: [
        { tenantId: tenant.id, name: 'app', prefix: client.prefix, hash: client.hash, role: 'CLIENT' },
        { tenantId: tenant.id, name: 'old', prefix: revoked.prefix, hash: revoked.hash, role: 'ADMIN', revokedAt: new Date() },
      ],
    });
    clientKey = client.key;
    revokedKey = revoked.key;
  });
  afterAll(() => t?.stop());

  it('answers health without a key', async () => {
    const r = await gql(t.url, '{ health { status database databaseKind version } }');
    expect(r.errors).toBeUndefined();
    expect(r.data?.health).toMatchObject({ status: 'OK', database: true, databaseKind: databaseMode });
  });

  it('serves /healthz and /readyz', async () => {
    expect((await fetch(`${t.url}/healthz`)).status).toBe(200);
    const ready = await fetch(`${t.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ ready: true, database: true });
  });

  it('refuses calls without a key as UNAUTHENTICATED', async () => {
    const r = await gql(t.url, CREATE, { input: { name: 'Nobody' } });
    expect(errorCodes(r)).toEqual(['UNAUTHENTICATED']);
    expect(errorCodes(await gql(t.url, LIST))).toEqual(['UNAUTHENTICATED']);
  });

  it('refuses unknown, malformed and revoked keys as UNAUTHENTICATED with 401', async () => {
    for (const key of ['not-a-key', `otk_${'x'.repeat(43)}`, revokedKey]) {
      const r = await gql(t.url, LIST, {}, key);
      expect(r.status).toBe(401);
      expect(errorCodes(r)).toEqual(['UNAUTHENTICATED']);
    }
    const res = await fetch(`${t.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Basic abc' },
      body: JSON.stringify({ query: '{ health { status } }' }),
    });
    expect(res.status).toBe(401);
  });

  it('refuses a tenant key on platform operations as FORBIDDEN', async () => {
    const r = await gql(t.url, CREATE, { input: { name: 'Sneaky' } }, clientKey);
    expect(errorCodes(r)).toEqual(['FORBIDDEN']);
    expect(errorCodes(await gql(t.url, LIST, {}, clientKey))).toEqual(['FORBIDDEN']);
  });

  it('lets the platform admin create and page through tenants', async () => {
    const a = await gql(t.url, CREATE, { input: { name: '  Ação   Ltd ' } }, PLATFORM_KEY);
    expect(a.errors).toBeUndefined();
    expect(a.data?.createTenant).toMatchObject({ name: 'Ação Ltd', slug: 'acao-ltd' });
    await gql(t.url, CREATE, { input: { name: 'Second', slug: 'second-one' } }, PLATFORM_KEY);

    const page1 = await gql(t.url, LIST, { first: 2 }, PLATFORM_KEY);
    const conn = page1.data!.tenants;
    expect(conn.totalCount).toBe(3);
    expect(conn.edges.map((e: any) => e.node.slug)).toEqual(['second-one', 'acao-ltd']);
    expect(conn.pageInfo.hasNextPage).toBe(true);
    const page2 = await gql(t.url, LIST, { first: 2, after: conn.pageInfo.endCursor }, PLATFORM_KEY);
    expect(page2.data!.tenants.edges.map((e: any) => e.node.slug)).toEqual(['keyholder']);
    expect(page2.data!.tenants.pageInfo.hasNextPage).toBe(false);
  });

  it('reports duplicates as CONFLICT and bad input as BAD_USER_INPUT', async () => {
    await gql(t.url, CREATE, { input: { name: 'Dup' } }, PLATFORM_KEY);
    expect(errorCodes(await gql(t.url, CREATE, { input: { name: 'dup' } }, PLATFORM_KEY))).toEqual(['CONFLICT']);
    expect(errorCodes(await gql(t.url, CREATE, { input: { name: 'x', slug: 'Bad Slug!' } }, PLATFORM_KEY))).toEqual(['BAD_USER_INPUT']);
    expect(errorCodes(await gql(t.url, CREATE, { input: { name: '' } }, PLATFORM_KEY))).toEqual(['BAD_USER_INPUT']);
    expect(errorCodes(await gql(t.url, LIST, { first: 100_000 }, PLATFORM_KEY))).toEqual(['BAD_USER_INPUT']);
    expect(errorCodes(await gql(t.url, LIST, { after: 'garbage' }, PLATFORM_KEY))).toEqual(['BAD_USER_INPUT']);
    // Well formed, but no such row: refused the same way, not an empty page.
    const nowhere = Buffer.from('c:00000000-0000-4000-8000-000000000000').toString('base64url');
    expect(errorCodes(await gql(t.url, LIST, { after: nowhere }, PLATFORM_KEY))).toEqual(['BAD_USER_INPUT']);
  });

  it('answers malformed requests with typed errors, never a 500', async () => {
    const cases: [string, string][] = [
      ['{"query": "{ health { status "}', 'BAD_USER_INPUT'],
      ['{bad json', 'BAD_USER_INPUT'],
      ['{"query": "{ nope }"}', 'BAD_USER_INPUT'],
      ['{"query": "query($n: Int) { tenants(first: $n) { totalCount } }", "variables": {"n": "ten"}}', 'BAD_USER_INPUT'],
    ];
    for (const [body, code] of cases) {
      const res = await fetch(`${t.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      expect(res.status).toBeLessThan(500);
      const json = (await res.json()) as { errors: { extensions: { code: string } }[] };
      expect(json.errors[0]!.extensions.code).toBe(code);
    }
  });

  it('refuses huge documents', async () => {
    const huge = `{ ${Array.from({ length: 6000 }, (_, i) => `a${i}: health { status }`).join(' ')} }`;
    const r = await gql(t.url, huge);
    expect(r.status).toBe(400);
    expect(errorCodes(r)[0]).toBe('BAD_USER_INPUT');
  });

  it('refuses oversize bodies as PAYLOAD_TOO_LARGE', async () => {
    const big = JSON.stringify({ query: '{ health { status } }', variables: { pad: 'x'.repeat(t.app.config.limits.maxRequestBytes + 10) } });
    const res = await fetch(`${t.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: big });
    expect(res.status).toBe(413);
    const json = (await res.json()) as { errors: { extensions: { code: string } }[] };
    expect(json.errors[0]!.extensions.code).toBe('PAYLOAD_TOO_LARGE');
  });

  it('echoes a request id on every response', async () => {
    const res = await fetch(`${t.url}/healthz`, { headers: { 'x-request-id': 'abc-123' } });
    expect(res.headers.get('x-request-id')).toBe('abc-123');
  });
});

describe('query depth limit', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ OMNITAG_MAX_QUERY_DEPTH: '3' });
  });
  afterAll(() => t?.stop());

  it('accepts queries within the limit and refuses deeper ones', async () => {
    expect((await gql(t.url, '{ tenants { totalCount pageInfo { hasNextPage } } }', {}, PLATFORM_KEY)).errors).toBeUndefined();
    const r = await gql(t.url, '{ tenants { edges { node { id } } } }', {}, PLATFORM_KEY);
    expect(r.status).toBe(400);
    expect(errorCodes(r)).toEqual(['BAD_USER_INPUT']);
  });
});
