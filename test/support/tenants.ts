import { expect } from 'vitest';
import { gql, PLATFORM_KEY } from './app.ts';

export interface TestTenant {
  readonly id: string;
  readonly adminKey: string;
  readonly clientKey: string;
}

/** A tenant with an ADMIN and a CLIENT key, made through the API as a real operator would. */
export async function createTenantWithKeys(url: string, name: string): Promise<TestTenant> {
  const t = await gql(url, 'mutation($name: String!) { createTenant(input: { name: $name }) { id } }', { name }, PLATFORM_KEY);
  expect(t.errors).toBeUndefined();
  const id = t.data!.createTenant.id as string;
  const issue = async (role: string, key: string, tenantId?: string) => {
    const r = await gql(url, 'mutation($i: CreateApiKeyInput!) { createApiKey(input: $i) { secret } }', { i: { name: role, role, tenantId } }, key);
    expect(r.errors).toBeUndefined();
    return r.data!.createApiKey.secret as string;
  };
  const adminKey = await issue('ADMIN', PLATFORM_KEY, id);
  const clientKey = await issue('CLIENT', adminKey);
  return { id, adminKey, clientKey };
}
