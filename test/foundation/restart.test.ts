import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gql, PLATFORM_KEY } from '../support/app.ts';
import { startServerProcess } from '../support/server-process.ts';

const CREATE = 'mutation($name: String!) { createTenant(input: { name: $name }) { id } }';
const SLUGS = '{ tenants(first: 100) { edges { node { slug } } } }';

async function slugs(url: string): Promise<string[]> {
  const r = await gql(url, SLUGS, {}, PLATFORM_KEY);
  return r.data!.tenants.edges.map((e: any) => e.node.slug).sort();
}

// The embedded database is the one this process owns, so its durability is ours to prove.
describe('embedded database across restarts', () => {
  let dataDir: string;
  const env = () => ({ OMNITAG_DATA_DIR: dataDir, OMNITAG_PLATFORM_ADMIN_KEY: PLATFORM_KEY });

  beforeAll(async () => {
    dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'omnitag-restart-'));
  });
  afterAll(() => fs.rm(dataDir, { recursive: true, force: true }));

  it('keeps committed tenants through a graceful stop and a kill -9', async () => {
    const first = await startServerProcess(env());
    expect((await gql(first.url, CREATE, { name: 'Before graceful' }, PLATFORM_KEY)).errors).toBeUndefined();
    expect(await first.stop('SIGTERM')).toBe(0);

    const second = await startServerProcess(env());
    expect(await slugs(second.url)).toEqual(['before-graceful']);
    expect((await gql(second.url, CREATE, { name: 'Before kill' }, PLATFORM_KEY)).errors).toBeUndefined();
    expect(await second.stop('SIGKILL')).toBe('SIGKILL');

    const third = await startServerProcess(env());
    expect(await slugs(third.url)).toEqual(['before-graceful', 'before-kill']);
    expect(await third.stop('SIGINT')).toBe(0);
  }, 240_000);
});
