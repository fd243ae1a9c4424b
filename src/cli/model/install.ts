/**
 * `omnitag model install`: official checkpoints → a verified model pack, in four steps:
 * check Python, fetch (or take) the checkpoints, run the export tool, verify the pack.
 */
import { spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { createLocalInferenceEngine } from '../../inference/index.ts';
import { downloadFile, formatBytes, hashFile, type DownloadProgress } from './download.ts';
import { InstallError } from './errors.ts';
import { checkPython, currentPlatform, pythonInstructions } from './python.ts';
import type { CheckpointSource } from './sources.ts';

export type PackPrecision = 'fp32' | 'fp16' | 'int8';

export interface Checkpoint {
  /** Where to fetch it from, and the SHA-256 it must have (null: not checked, `--no-verify`). */
  source: Pick<CheckpointSource, 'id' | 'fileName' | 'url' | 'approxBytes'> & { sha256: string | null };
  /** A file already on disk (`--from-files`) instead of a download. */
  file?: string;
}

export interface InstallOptions {
  ram: Checkpoint;
  clip: Checkpoint;
  precision: PackPrecision;
  /** The pack folder to write (replaced if it holds a pack). */
  out: string;
  /** Where downloads go and stay (a later run reuses them). */
  cacheDir: string;
  python: string;
  /** The export tool's built-in tag list: `--tags FILE` or `--ram-dir DIR`. */
  tags: { file: string } | { ramDir: string };
  repoRoot: string;
  /** How the user runs this command again (for instructions). */
  retryCommand: string;
  reporter: InstallReporter;
  signal?: AbortSignal;
}

export interface InstallReporter {
  /** A line for the person running it (stderr). */
  info(line: string): void;
  /** Download progress of one checkpoint; `done` once it is complete. */
  progress(file: string, progress: DownloadProgress): void;
  done(file: string): void;
}

export interface InstallResult {
  packDir: string;
  checkpoints: { ram: string; clip: string };
  /** Bytes fetched over the network by this run. */
  fetched: number;
  selftestChecks: number;
}

export async function installModel(o: InstallOptions): Promise<InstallResult> {
  const python = await checkPython(o.python);
  if (!python.ok) throw new InstallError('PYTHON_MISSING', pythonInstructions(python.problem, currentPlatform(), o.retryCommand), { python: o.python });
  o.reporter.info(`python: ${o.python} (torch ${python.torch})`);

  let fetched = 0;
  const files: Record<'ram' | 'clip', string> = { ram: '', clip: '' };
  for (const cp of [o.ram, o.clip]) {
    if (cp.file) {
      files[cp.source.id] = await checkLocalCheckpoint(cp, o.reporter);
      continue;
    }
    const dest = path.join(o.cacheDir, cp.source.fileName);
    o.reporter.info(`${cp.source.fileName}: ${cp.source.url} (about ${formatBytes(cp.source.approxBytes)}) → ${dest}`);
    const r = await downloadFile({
      url: cp.source.url,
      dest,
      ...(cp.source.sha256 ? { sha256: cp.source.sha256 } : {}),
      onProgress: (p) => o.reporter.progress(cp.source.fileName, p),
      ...(o.signal ? { signal: o.signal } : {}),
    });
    o.reporter.done(cp.source.fileName);
    fetched += r.fetched;
    const how = r.reused ? 'already downloaded' : r.resumedFrom > 0 ? `resumed at ${formatBytes(r.resumedFrom)}, fetched ${formatBytes(r.fetched)}` : `fetched ${formatBytes(r.fetched)}`;
    o.reporter.info(`${cp.source.fileName}: ${how}; SHA-256 ${cp.source.sha256 ? 'verified' : `not checked (${r.sha256})`}`);
    files[cp.source.id] = r.path;
  }

  await runExport(o, files);
  const selftestChecks = await verifyPack(o.out, o.reporter);
  return { packDir: o.out, checkpoints: { ram: files.ram, clip: files.clip }, fetched, selftestChecks };
}

async function checkLocalCheckpoint(cp: Checkpoint, reporter: InstallReporter): Promise<string> {
  const file = path.resolve(cp.file!);
  if (!existsSync(file) || !statSync(file).isFile()) {
    throw new InstallError('CHECKPOINT_NOT_FOUND', `${cp.source.id === 'ram' ? 'RAM++' : 'CLIP'} checkpoint not found: ${file}`, { file });
  }
  if (!cp.source.sha256) {
    reporter.info(`${file}: SHA-256 not checked (--no-verify)`);
    return file;
  }
  reporter.info(`${file}: checking SHA-256 ...`);
  const sha = await hashFile(file);
  if (sha !== cp.source.sha256) {
    throw new InstallError('CHECKSUM_MISMATCH', `${file}: SHA-256 ${sha}, expected ${cp.source.sha256} (${cp.source.fileName}); another file, or a damaged copy. Pass the right SHA-256 (--${cp.source.id}-sha256) or --no-verify to use it anyway`, {
      file,
      expected: cp.source.sha256,
      actual: sha,
    });
  }
  return file;
}

/** The export tool's own flags for each precision (`--quantize int8` needs an export tool that has it). */
const PRECISION_FLAGS: Record<PackPrecision, string[]> = { fp32: [], fp16: ['--fp16'], int8: ['--quantize', 'int8'] };

async function runExport(o: InstallOptions, files: Record<'ram' | 'clip', string>): Promise<void> {
  const args = [
    '-m',
    'tools.export',
    '--ram-checkpoint',
    files.ram,
    '--clip',
    files.clip,
    ...('file' in o.tags ? ['--tags', o.tags.file] : ['--ram-dir', o.tags.ramDir]),
    ...PRECISION_FLAGS[o.precision],
    '--out',
    path.resolve(o.out),
  ];
  o.reporter.info(`exporting: ${o.python} ${args.join(' ')}`);
  const tail: string[] = [];
  const code = await new Promise<number | string>((resolve, reject) => {
    const child = spawn(o.python, args, { cwd: o.repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    const onLine = (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n')) {
        if (!line.trim()) continue;
        o.reporter.info(`  export: ${line}`);
        tail.push(line);
        if (tail.length > 20) tail.shift();
      }
    };
    child.stdout.on('data', onLine);
    child.stderr.on('data', onLine);
    const stop = () => child.kill('SIGINT'); // the export tool cleans up its temporary folder on SIGINT
    o.signal?.addEventListener('abort', stop, { once: true });
    child.once('error', (e) => reject(new InstallError('PYTHON_MISSING', `cannot run ${o.python}: ${e.message}`, { python: o.python })));
    child.once('close', (c, sig) => {
      o.signal?.removeEventListener('abort', stop);
      resolve(c ?? sig ?? -1);
    });
  });
  if (code === 0) return;
  const last = tail.filter((l) => l.startsWith('error') || /Error|error:/.test(l)).pop() ?? tail.at(-1) ?? '';
  const hint = o.precision === 'int8' && /unrecognized arguments: --quantize/.test(tail.join('\n')) ? ' (this export tool has no int8 quantization: update it, or install fp32/--fp16)' : '';
  throw new InstallError('EXPORT_FAILED', `the export tool failed (exit ${code}): ${last}${hint}`, { exit: code });
}

/** Every file's SHA-256 against the manifest, then the pack's self-test in onnxruntime. */
async function verifyPack(dir: string, reporter: InstallReporter): Promise<number> {
  reporter.info('verifying the pack: SHA-256 of every file in its manifest, then its self-test ...');
  let engine;
  try {
    engine = await createLocalInferenceEngine({ packDir: dir, verifyChecksums: true, workers: 1, maxBatchSize: 2 });
    await engine.start();
  } catch (e) {
    await engine?.dispose();
    throw new InstallError('PACK_INVALID', `the pack in ${dir} is not valid: ${(e as Error).message}`, { dir });
  }
  try {
    const report = await engine.selftest();
    if (!report) throw new InstallError('PACK_INVALID', `the pack in ${dir} has no self-test file`, { dir });
    for (const c of report.checks.filter((c) => !c.ok)) reporter.info(`  FAIL ${c.name}: max |diff| ${c.maxAbsDiff.toExponential(2)} (tolerance ${c.tolerance})`);
    if (!report.ok) throw new InstallError('PACK_INVALID', `the pack in ${dir} fails its self-test on ${engine.info.provider}`, { dir });
    if (engine.info.randomWeights) throw new InstallError('PACK_INVALID', `the pack in ${dir} says its weights are random`, { dir });
    reporter.info(`self-test passed (${report.checks.length} checks on ${engine.info.provider})`);
    return report.checks.length;
  } finally {
    await engine.dispose();
  }
}
