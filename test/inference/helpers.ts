import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const sharedDir = process.env.OMNITAG_SHARED_DIR ?? path.resolve(repoRoot, '..', 'shared');
export const hasShared = existsSync(path.join(sharedDir, 'data'));

const FIXTURE_SCRIPT = path.join(repoRoot, 'test', 'inference', 'fixtures', 'make_fixture_pack.py');
const PYTHON = process.env.OMNITAG_PYTHON ?? '/usr/bin/python3';

/**
 * The pack the inference tests run on: OMNITAG_TEST_PACK, else the project's tiny pack
 * (packs/tiny), else toy graphs generated once per script version by
 * fixtures/make_fixture_pack.py (needs Python with torch).
 */
export function testPackDir(): string | null {
  if (process.env.OMNITAG_TEST_PACK) return path.resolve(process.env.OMNITAG_TEST_PACK);
  const tiny = path.join(repoRoot, 'packs', 'tiny');
  if (existsSync(path.join(tiny, 'manifest.json'))) return tiny;
  return fixturePackDir();
}

export function fixturePackDir(): string | null {
  const version = createHash('sha256').update(readFileSync(FIXTURE_SCRIPT)).digest('hex').slice(0, 12);
  const dir = path.join(os.tmpdir(), `omnitag-fixture-pack-${version}`);
  if (existsSync(path.join(dir, 'manifest.json'))) return dir;
  if (!existsSync(PYTHON)) return null;
  // build beside the final place, then rename: parallel test files may race for it
  const tmp = mkdtempSync(`${dir}-tmp-`);
  const bpe = path.join(sharedDir, 'data', 'clip', 'bpe_simple_vocab_16e6.txt.gz');
  try {
    execFileSync(PYTHON, [FIXTURE_SCRIPT, tmp, ...(existsSync(bpe) ? ['--bpe', bpe] : [])], { stdio: 'pipe' });
    try {
      renameSync(tmp, dir);
    } catch {
      rmSync(tmp, { recursive: true, force: true }); // another process won the race
    }
    return dir;
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    console.warn(`inference tests: cannot build the fixture pack (${(e as Error).message.split('\n')[0]})`);
    return null;
  }
}

/** A writable copy of a pack, for tests that damage it. */
export function copyPack(dir: string): string {
  const target = mkdtempSync(path.join(os.tmpdir(), 'omnitag-pack-copy-'));
  cpSync(dir, target, { recursive: true });
  return target;
}

/** Largest absolute difference between two arrays of equal length. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Deterministic pseudo-random numbers (mulberry32), so failures reproduce. */
export function seededRandom(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** n random unit vectors of width dim, flat. */
export function randomUnitRows(n: number, dim: number, rand: () => number): Float32Array {
  const out = new Float32Array(n * dim);
  for (let r = 0; r < n; r++) {
    let norm = 0;
    for (let k = 0; k < dim; k++) {
      const v = rand() * 2 - 1;
      out[r * dim + k] = v;
      norm += v * v;
    }
    norm = Math.sqrt(norm);
    for (let k = 0; k < dim; k++) out[r * dim + k]! /= norm;
  }
  return out;
}

/**
 * The tiny pack exported with `--quantize int8` (the same seeded weights as packs/tiny), built
 * once per version of the export tool into the temp folder. Needs Python with torch and onnx,
 * and the shared data (tag list, CLIP merges, photos for the drift report). Null when absent.
 */
export function int8TinyPackDir(): string | null {
  const ram = path.join(sharedDir, 'data', 'ram');
  const bpe = path.join(sharedDir, 'data', 'clip', 'bpe_simple_vocab_16e6.txt.gz');
  if (!existsSync(PYTHON) || !existsSync(ram) || !existsSync(bpe)) return null;
  const tool = path.join(repoRoot, 'tools', 'export');
  const flags = ['--random-init', 'tiny', '--heatmaps', '--quantize', 'int8'];
  const hash = createHash('sha256').update(flags.join(' '));
  for (const f of [...readdirSync(path.join(tool, 'omnitag_export')).sort().map((f) => path.join('omnitag_export', f)), 'verify_onnx.mjs']) {
    if (f.endsWith('.py') || f.endsWith('.mjs')) hash.update(f).update(readFileSync(path.join(tool, f)));
  }
  const dir = path.join(os.tmpdir(), `omnitag-tiny-int8-${hash.digest('hex').slice(0, 12)}`);
  if (existsSync(path.join(dir, 'manifest.json'))) return dir;
  const tmp = mkdtempSync(`${dir}-tmp-`);
  try {
    const out = path.join(tmp, 'pack');
    execFileSync(PYTHON, ['-m', 'tools.export', ...flags, '--out', out, '--bpe', bpe, '--ram-dir', ram, '--threads', '1'], {
      cwd: repoRoot,
      stdio: 'pipe',
    });
    try {
      renameSync(out, dir);
    } catch {
      // another process won the race
    }
    return dir;
  } catch (e) {
    console.warn(`int8 tests: cannot export the tiny int8 pack (${(e as Error).message.split('\n')[0]})`);
    return null;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
