import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '..', '..');
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { allowScripts: Record<string, boolean> };
const lock = JSON.parse(fs.readFileSync(path.join(root, 'package-lock.json'), 'utf8')) as { packages: Record<string, { hasInstallScript?: boolean }> };

/** npm with the environment of a person's shell, not of the `npm test` that runs this file. */
function npm(args: string[], cwd: string) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));
  return spawnSync('npm', args, { cwd, env, encoding: 'utf8', timeout: 60_000 });
}


describe('installing downloads nothing outside the registry', () => {
  it('decides about every install script of the lockfile, and denies the ones that download', () => {
    const withScripts = Object.entries(lock.packages)
      .filter(([where, p]) => where !== '' && p.hasInstallScript)
      .map(([where]) => where.replace(/^.*node_modules\//, ''));
    expect(withScripts.length).toBeGreaterThan(0);
    for (const name of withScripts) expect(Object.keys(pkg.allowScripts), name).toContain(name);
    expect(pkg.allowScripts).toMatchObject({ 'onnxruntime-node': false, '@prisma/engines': false });
  });

  it('has no project configuration npm does not know (npm warns on every command about those)', () => {
    const r = npm(['config', 'get', 'registry'], root);
    expect(r.status).toBe(0);
    expect(r.stderr).not.toMatch(/Unknown (project|user|env|cli) config/i);
  });

  it("skips onnxruntime-node's download with the variable CI sets, which its script reads", () => {
    const script = path.join(root, 'node_modules', 'onnxruntime-node', 'script', 'install.js');
    const r = spawnSync(process.execPath, [script], { env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip' }, encoding: 'utf8', timeout: 30_000 });
    expect(r.status).toBe(0);
    expect(fs.readFileSync(path.join(root, '.ci', 'run'), 'utf8')).toMatch(/ONNXRUNTIME_NODE_INSTALL=skip npm ci\b/);
  });

  it('is read by npm as covering every install script of the installed tree (npm with `install-scripts`)', (ctx) => {
    const r = npm(['install-scripts', 'ls'], root);
    if (/unknown command/i.test(`${r.stdout}${r.stderr}`)) ctx.skip();
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/No packages with unreviewed install scripts/);
  });
});
