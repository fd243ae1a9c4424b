/**
 * The console in the browser on the built-in vocabulary (4,585 tags with RAM++ packs): how long
 * until the first rows of the tag table are visible, and until a search is answered, measured
 * from the test driver around real clicks and keystrokes in headless chromium.
 *   - open (page load): a fresh page at the vocabulary's address → 50 rows in the table;
 *   - open (in the app): a click on the vocabulary in the list → 50 rows;
 *   - search: a name typed into the search box → the table says how many tags match (includes
 *     the 200 ms the box waits for typing to settle).
 * Usage: npx tsx bench/console.bench.ts [--pack packs/tiny] [--rounds 10]
 * Needs /usr/bin/chromium and a built console (npm install builds it).
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Command } from 'commander';
import { chromium } from 'playwright-core';
import { App } from '../src/app.ts';
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/core/log.ts';

const opts = new Command()
  .option('--pack <dir>', 'model pack', 'packs/tiny')
  .option('--rounds <n>', 'measurements of each kind', '10')
  .parse()
  .opts<{ pack: string; rounds: string }>();
const rounds = Number(opts.rounds);
const ADMIN = 'bench-platform-admin-key-000000';
const SEARCHES = ['dog', 'car', 'tree', 'water', 'red', 'man', 'food', 'sky', 'cat', 'city'];

const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'omnitag-bench-'));
const config = loadConfig({ ...process.env, PORT: '0', LOG_LEVEL: 'warn', OMNITAG_DATA_DIR: dataDir, OMNITAG_PLATFORM_ADMIN_KEY: ADMIN, OMNITAG_MODEL_PACK: opts.pack });
const app = new App(config, createLogger('warn'));
await app.start();

async function call(query: string, variables: Record<string, unknown>, key: string) {
  const res = await fetch(`${app.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` }, body: JSON.stringify({ query, variables }) });
  const body = (await res.json()) as { data?: any; errors?: unknown[] };
  if (body.errors) throw new Error(JSON.stringify(body.errors));
  return body.data;
}

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
  return `median ${at(0.5).toFixed(0)} ms, p90 ${at(0.9).toFixed(0)} ms, min ${s[0]!.toFixed(0)} ms (n=${s.length})`;
};

const browser = await chromium.launch({
  executablePath: process.env.OMNITAG_CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  chromiumSandbox: false,
  args: ['--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const tenant = (await call('mutation($n: String!) { createTenant(input: { name: $n }) { id } }', { n: 'Bench' }, ADMIN)).createTenant.id;
  const key = (await call('mutation($t: ID!) { createApiKey(input: { name: "b", role: ADMIN, tenantId: $t }) { secret } }', { t: tenant }, ADMIN)).createApiKey.secret;
  const vocab = (await call('mutation { createVocabulary(input: { name: "Built-in", fromBuiltin: true }) { id stats { tags } } }', {}, key)).createVocabulary;
  const page = await (await browser.newContext({ baseURL: app.url })).newPage();
  await page.goto('/console/');
  await page.getByLabel('API key').fill(key);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('link', { name: 'Built-in' }).waitFor();
  const rows = page.locator('table.tags tbody tr');
  const firstRows = () => rows.nth(49).waitFor({ state: 'visible' });

  const pageLoad: number[] = [];
  const inApp: number[] = [];
  const search: number[] = [];
  for (let i = 0; i < rounds; i++) {
    await page.goto('/console/#/vocabularies');
    await page.getByRole('link', { name: 'Built-in' }).waitFor();
    let t0 = performance.now();
    await page.getByRole('link', { name: 'Built-in' }).click();
    await firstRows();
    inApp.push(performance.now() - t0);

    const term = SEARCHES[i % SEARCHES.length]!;
    t0 = performance.now();
    await page.getByLabel('Search names and aliases').fill(term);
    await page.getByText(new RegExp(`tags match “${term}”`)).waitFor();
    search.push(performance.now() - t0);

    await page.goto('about:blank');
    t0 = performance.now();
    await page.goto(`/console/#/vocabularies/${vocab.id}`);
    await firstRows();
    pageLoad.push(performance.now() - t0);
  }
  const info = (await call('{ modelInfo { packName builtinTagCount } }', {}, key)).modelInfo;
  console.log(`console, vocabulary of ${vocab.stats.tags} built-in tags (pack ${info.packName}), chromium headless, ${os.cpus().length} CPUs, load ${os.loadavg()[0]!.toFixed(1)}`);
  console.log(`  open, page load → 50 rows:   ${stats(pageLoad)}`);
  console.log(`  open, in the app → 50 rows:  ${stats(inApp)}`);
  console.log(`  search answered (incl. 200 ms settle): ${stats(search)}`);
} finally {
  await browser.close();
  await app.stop();
  await fs.rm(dataDir, { recursive: true, force: true });
}
