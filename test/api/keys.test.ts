import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseMode } from '../support/database.ts';
import { errorCodes, gql, PLATFORM_KEY, startTestApp, type TestApp } from '../support/app.ts';

const CREATE_TENANT = 'mutation($name: String!) { createTenant(input: { name: $name }) { id } }';
const CREATE_KEY = `mutation($input: CreateApiKeyInput!) {
  createApiKey(input: $input) { secret apiKey { id name role prefix createdAt lastUsedAt revokedAt } }
}`;
const VIEWER = '{ viewer { role keyPrefix tenant { id name } } }';

describe(`API keys (${databaseMode} database)`, () => {
  let t: TestApp;
  let tenantA: string;
  let tenantB: string;
  let adminA: string;
  let adminB: string;

  const issue = async (key: string, input: Record<string, unknown>) => {
    const r = await gql(t.url, CREATE_KEY, { input }, key);
    expect(r.errors).toBeUndefined();
    return r.data!.createApiKey as { secret: string; apiKey: { id: string; prefix: string; role: string } };
  };

  beforeAll(async () => {
    t = await startTestApp();
    tenantA = (await gql(t.url, CREATE_TENANT, { name: 'Tenant A' }, PLATFORM_KEY)).data!.createTenant.id;
    tenantB = (await gql(t.url, CREATE_TENANT, { name: 'Tenant B' }, PLATFORM_KEY)).data!.createTenant.id;
    adminA = (await issue(PLATFORM_KEY, { name: 'bootstrap', role: 'ADMIN', tenantId: tenantA })).secret;
    adminB = (await issue(PLATFORM_KEY, { name: 'bootstrap', role: 'ADMIN', tenantId: tenantB })).secret;
  });
  afterAll(() => t?.stop());

  it('lets the platform admin issue a tenant its first key, shown once', async () => {
    const created = await issue(PLATFORM_KEY, { name: 'ops', role: 'CLIENT', tenantId: tenantA });
    expect(created.secret).toMatch(/^otk_[A-Za-z0-9_-]{43}$/);
    expect(created.secret.startsWith(created.apiKey.prefix)).toBe(true);
    const list = await gql(t.url, '{ apiKeys { id prefix } }', {}, adminA);
    const listed = list.data!.apiKeys.find((k: any) => k.id === created.apiKey.id);
    expect(listed).toEqual({ id: created.apiKey.id, prefix: created.apiKey.prefix });
    expect(JSON.stringify(list)).not.toContain(created.secret);
  });

  it('requires the platform admin to name a tenant, and an existing one', async () => {
    expect(errorCodes(await gql(t.url, CREATE_KEY, { input: { name: 'x', role: 'ADMIN' } }, PLATFORM_KEY))).toEqual(['BAD_USER_INPUT']);
    const missing = await gql(t.url, CREATE_KEY, { input: { name: 'x', role: 'ADMIN', tenantId: '00000000-0000-4000-8000-000000000000' } }, PLATFORM_KEY);
    expect(errorCodes(missing)).toEqual(['NOT_FOUND']);
  });

  it('tells a tenant key who it is', async () => {
    const r = await gql(t.url, VIEWER, {}, adminA);
    expect(r.data!.viewer).toMatchObject({ role: 'ADMIN', tenant: { id: tenantA, name: 'Tenant A' } });
    expect(adminA.startsWith(r.data!.viewer.keyPrefix)).toBe(true);
    expect(errorCodes(await gql(t.url, VIEWER, {}, PLATFORM_KEY))).toEqual(['FORBIDDEN']);
    expect(errorCodes(await gql(t.url, VIEWER))).toEqual(['UNAUTHENTICATED']);
  });

  it('lets tenant admins manage their own keys and not others', async () => {
    const client = await issue(adminA, { name: 'mobile app', role: 'CLIENT' });
    expect((await gql(t.url, VIEWER, {}, client.secret)).data!.viewer.role).toBe('CLIENT');
    // A CLIENT key can neither list nor issue nor revoke keys.
    expect(errorCodes(await gql(t.url, '{ apiKeys { id } }', {}, client.secret))).toEqual(['FORBIDDEN']);
    expect(errorCodes(await gql(t.url, CREATE_KEY, { input: { name: 'y', role: 'ADMIN' } }, client.secret))).toEqual(['FORBIDDEN']);
    // Naming another tenant, or revoking its key, looks exactly like a missing one.
    expect(errorCodes(await gql(t.url, CREATE_KEY, { input: { name: 'y', role: 'ADMIN', tenantId: tenantA } }, adminB))).toEqual(['NOT_FOUND']);
    const revokeForeign = await gql(t.url, 'mutation($id: ID!) { revokeApiKey(id: $id) { id } }', { id: client.apiKey.id }, adminB);
    expect(errorCodes(revokeForeign)).toEqual(['NOT_FOUND']);
    expect((await gql(t.url, '{ apiKeys { id } }', {}, adminB)).data!.apiKeys.map((k: any) => k.id)).not.toContain(client.apiKey.id);
  });

  it('revokes keys at once and records last use', async () => {
    const key = await issue(adminA, { name: 'short-lived', role: 'CLIENT' });
    expect((await gql(t.url, VIEWER, {}, key.secret)).errors).toBeUndefined();
    // last-used is written off the request path, so wait for it.
    const lastUsed = async () =>
      (await gql(t.url, '{ apiKeys { id lastUsedAt } }', {}, adminA)).data!.apiKeys.find((k: any) => k.id === key.apiKey.id).lastUsedAt;
    await expect.poll(lastUsed).not.toBeNull();
    const revoked = await gql(t.url, 'mutation($id: ID!) { revokeApiKey(id: $id) { revokedAt } }', { id: key.apiKey.id }, adminA);
    expect(revoked.data!.revokeApiKey.revokedAt).toBeTruthy();
    const after = await gql(t.url, VIEWER, {}, key.secret);
    expect(after.status).toBe(401);
    expect(errorCodes(after)).toEqual(['UNAUTHENTICATED']);
  });

  it('describes the model to tenant keys', async () => {
    const r = await gql(t.url, '{ modelInfo { packName precision quantization { method } imageSize embedDim executionProvider builtinTagCount descriptionGenerator } }', {}, adminA);
    expect(r.errors).toBeUndefined();
    expect(r.data!.modelInfo).toMatchObject({ packName: 'omnitag-tiny-random', precision: 'fp32', quantization: null, executionProvider: 'cpu', builtinTagCount: 4585, descriptionGenerator: 'template' });
  });
});
