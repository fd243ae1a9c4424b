/**
 * Builds the C resampler (src/inference/image/native, linked with libjpeg-turbo: Debian's
 * libjpeg62-turbo-dev) with node-gyp, run by `npm install`.
 * Offline: the headers come from the Node installation itself (`--nodedir` at its prefix,
 * which holds include/node), so node-gyp downloads nothing. Never fails the install: without a
 * compiler or headers the resampler's JavaScript passes are used, which give the same bytes,
 * about 3–4× slower.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const dir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'src', 'inference', 'image', 'native');
const prefix = path.resolve(path.dirname(process.execPath), '..');
const nodedir = process.env.npm_config_nodedir ?? (existsSync(path.join(prefix, 'include', 'node', 'node_api.h')) ? prefix : undefined);

function nodeGyp(): string | undefined {
  // npm ships node-gyp (and tells scripts where, in npm_config_node_gyp)
  if (process.env.npm_config_node_gyp && existsSync(process.env.npm_config_node_gyp)) return process.env.npm_config_node_gyp;
  const npmCli = process.env.npm_execpath;
  const candidates = [
    npmCli && path.join(path.dirname(npmCli), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
    path.join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ];
  for (const c of candidates) if (c && existsSync(c)) return c;
  try {
    return createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js');
  } catch {
    return undefined;
  }
}

const gyp = nodeGyp();
if (!gyp || !nodedir) {
  console.warn(`native resampler not built (${!gyp ? 'node-gyp not found' : "Node's headers not found"}): the JavaScript resampler is used (same results, slower)`);
  process.exit(0);
}
const result = spawnSync(process.execPath, [gyp, 'rebuild', `--nodedir=${nodedir}`, '--loglevel=warn'], { cwd: dir, stdio: 'inherit' });
if (result.status !== 0) {
  console.warn('native resampler build failed: the JavaScript resampler is used (same results, slower)');
}
process.exit(0);
