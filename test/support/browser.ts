import fs from 'node:fs';
import path from 'node:path';
import axe from 'axe-core';
import { chromium, type Browser, type Page } from 'playwright-core';
import { expect } from 'vitest';
import { databaseMode } from './database.ts';

const repoRoot = path.resolve(import.meta.dirname, '..', '..');
/** Debian's chromium, which `.ci/run` installs. */
export const CHROMIUM = process.env.OMNITAG_CHROMIUM ?? '/usr/bin/chromium';
const CONSOLE_INDEX = path.join(repoRoot, 'console', 'dist', 'index.html');

/**
 * Why the browser tests cannot run here, or null when they can. They run in the embedded-database
 * pass only (the console does not care which database serves it, and the suite runs twice in
 * CI). Outside CI a missing browser or console build skips them; in CI it is a failure.
 */
export function browserSkipReason(): string | null {
  if (databaseMode !== 'embedded') return 'the browser tests run in the embedded-database pass';
  const missing = !fs.existsSync(CHROMIUM) ? `no browser at ${CHROMIUM} (apt-get install chromium)` : !fs.existsSync(CONSOLE_INDEX) ? 'the console is not built (npm run console:build)' : null;
  if (missing && process.env.CI) throw new Error(`browser tests cannot run in CI: ${missing}`);
  return missing;
}

/** Headless chromium with a fresh profile; no background traffic (the network here is closed). */
export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    chromiumSandbox: false,
    args: ['--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/** Problems the page reported: Content-Security-Policy violations and uncaught errors. */
export function watchPage(page: Page): string[] {
  const problems: string[] = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error' && /Content.Security.Policy|Refused to/i.test(msg.text())) problems.push(msg.text());
  });
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  return problems;
}

/** Runs axe-core on the page as it is and fails on any serious or critical violation. */
export async function expectAccessible(page: Page, screen: string): Promise<void> {
  // Evaluated by the test's driver, not loaded as a page script, so the CSP stays as served.
  if ((await page.evaluate('typeof window.axe')) !== 'object') await page.evaluate(axe.source);
  const violations = (await page.evaluate(`axe.run(document, { resultTypes: ['violations'] }).then((r) =>
    r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' ')) })))`)) as { id: string; impact: string | null; help: string; nodes: string[] }[];
  expect(violations.filter((v) => v.impact === 'serious' || v.impact === 'critical'), `accessibility of ${screen}`).toEqual([]);
}

/**
 * Saves a screenshot to docs/console/<name>.png when OMNITAG_CONSOLE_SCREENSHOTS is set (the
 * README shows them); a normal run writes nothing.
 */
export async function screenshot(page: Page, name: string): Promise<void> {
  if (!process.env.OMNITAG_CONSOLE_SCREENSHOTS) return;
  const dir = path.join(repoRoot, 'docs', 'console');
  fs.mkdirSync(dir, { recursive: true });
  await page.screenshot({ path: path.join(dir, `${name}.png`), fullPage: true });
}
