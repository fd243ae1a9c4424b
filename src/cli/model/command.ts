/**
 * `omnitag model install [ram-plus]`: the command line of the installer (install.ts does the work).
 *   npx omnitag model install                      official checkpoints → packs/ram-plus
 *   npx omnitag model install --fp16               a float16 pack for GPUs (packs/ram-plus-fp16)
 *   npx omnitag model install --from-files ram_plus_swin_large_14m.pth ViT-B-16.pt
 * Exit status: 0, 2 (usage), or the code of src/cli/model/errors.ts.
 */
import os from 'node:os';
import path from 'node:path';
import cliProgress from 'cli-progress';
import { Command, InvalidArgumentError, Option } from 'commander';
import { MODEL_INSTALL_COMMAND } from '../../core/demo-model.ts';
import { formatBytes, type DownloadProgress } from './download.ts';
import { InstallError } from './errors.ts';
import { installModel, type InstallReporter, type PackPrecision } from './install.ts';
import { defaultPython } from './python.ts';
import { CLIP_VIT_B16, RAM_PLUS, SHA256_HEX } from './sources.ts';

interface InstallFlags {
  fp16?: boolean;
  int8?: boolean;
  out?: string;
  fromFiles?: string[];
  ramUrl: string;
  clipUrl: string;
  ramSha256?: string;
  clipSha256?: string;
  verify: boolean;
  python: string;
  cacheDir: string;
  tags?: string;
  ramDir?: string;
  progress: boolean;
}

// Empty values (an unset variable passed on, e.g. by docker compose) count as unset.
const sha256Arg = (v: string) => {
  const s = v.trim().toLowerCase();
  if (!s) return undefined;
  if (!SHA256_HEX.test(s)) throw new InvalidArgumentError('expected a SHA-256: 64 hex digits');
  return s;
};

function defaultCacheDir(): string {
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'omnitag', 'checkpoints');
}

export function registerModelCommands(program: Command, repoRoot: string): void {
  const model = program.command('model').description('get and manage model packs');
  model
    .command('install')
    .description('download the official RAM++ and CLIP checkpoints, export them to a model pack and verify it')
    .argument('[model]', 'which model (only ram-plus for now)', 'ram-plus')
    .addOption(new Option('--fp16', 'float16 graphs (for GPUs); the export tool’s --fp16').conflicts('int8'))
    .addOption(new Option('--int8', 'int8-quantized graphs; the export tool’s --quantize int8').conflicts('fp16'))
    .option('--out <dir>', 'pack folder to write (default packs/ram-plus, -fp16 / -int8 appended for those)')
    .option('--from-files <files...>', 'use checkpoints already on disk instead of downloading: RAM_CKPT CLIP_CKPT')
    .addOption(new Option('--ram-url <url>', 'where to fetch the RAM++ checkpoint (a mirror)').env('OMNITAG_RAM_URL').default(RAM_PLUS.url))
    .addOption(new Option('--clip-url <url>', 'where to fetch CLIP ViT-B/16 (a mirror)').env('OMNITAG_CLIP_URL').default(CLIP_VIT_B16.url))
    .addOption(new Option('--ram-sha256 <hex>', 'SHA-256 the RAM++ checkpoint must have').env('OMNITAG_RAM_SHA256').default(RAM_PLUS.sha256).argParser(sha256Arg))
    .addOption(new Option('--clip-sha256 <hex>', 'SHA-256 the CLIP checkpoint must have').env('OMNITAG_CLIP_SHA256').default(CLIP_VIT_B16.sha256).argParser(sha256Arg))
    .option('--no-verify', 'do not check the checkpoints’ SHA-256 (downloads and --from-files alike)')
    .addOption(new Option('--python <path>', 'Python with torch and onnx for the export').env('OMNITAG_PYTHON').default(defaultPython()))
    .addOption(new Option('--cache-dir <dir>', 'where downloads are kept (and resumed)').env('OMNITAG_MODEL_CACHE').default(defaultCacheDir()))
    .option('--tags <file>', 'built-in tag list for the export (default: the tag list of packs/tiny, RAM++’s 4,585 tags)')
    .option('--ram-dir <dir>', 'or: a recognize-anything checkout whose ram/data tag lists to use')
    .option('--no-progress', 'no progress bar')
    .action(async (name: string, flags: InstallFlags, cmd: Command) => {
      if (name !== 'ram-plus') cmd.error(`error: unknown model "${name}" (known: ram-plus)`);
      if (flags.fromFiles && flags.fromFiles.length !== 2) cmd.error('error: --from-files takes two files: the RAM++ checkpoint and the CLIP checkpoint');
      const precision: PackPrecision = flags.fp16 ? 'fp16' : flags.int8 ? 'int8' : 'fp32';
      const out = path.resolve(flags.out ?? path.join(repoRoot, 'packs', precision === 'fp32' ? 'ram-plus' : `ram-plus-${precision}`));
      const reporter = consoleReporter(flags.progress);
      const abort = new AbortController();
      const onSigint = () => abort.abort();
      process.once('SIGINT', onSigint);
      try {
        const result = await installModel({
          ram: { source: { ...RAM_PLUS, url: flags.ramUrl || RAM_PLUS.url, sha256: flags.verify ? (flags.ramSha256 ?? RAM_PLUS.sha256) : null }, ...(flags.fromFiles ? { file: flags.fromFiles[0]! } : {}) },
          clip: { source: { ...CLIP_VIT_B16, url: flags.clipUrl || CLIP_VIT_B16.url, sha256: flags.verify ? (flags.clipSha256 ?? CLIP_VIT_B16.sha256) : null }, ...(flags.fromFiles ? { file: flags.fromFiles[1]! } : {}) },
          precision,
          out,
          cacheDir: path.resolve(flags.cacheDir || defaultCacheDir()),
          python: flags.python || defaultPython(),
          tags: flags.ramDir ? { ramDir: path.resolve(flags.ramDir) } : { file: path.resolve(flags.tags ?? path.join(repoRoot, 'packs', 'tiny', 'builtin', 'tags.json')) },
          repoRoot,
          retryCommand: MODEL_INSTALL_COMMAND,
          reporter,
          signal: abort.signal,
        });
        const shown = path.relative(process.cwd(), result.packDir);
        const packArg = shown && !shown.startsWith('..') && !path.isAbsolute(shown) ? shown : result.packDir;
        process.stderr.write(`\nThe pack is ready in ${result.packDir}. The checkpoints stay in ${path.dirname(result.checkpoints.ram)} (delete them to free the space).\nStart the server on it with:\n`);
        process.stdout.write(`OMNITAG_MODEL_PACK=${quote(packArg)} npm start\n`);
      } catch (e) {
        reporter.stop();
        if (!(e instanceof InstallError)) throw e;
        process.stderr.write(`\nerror [${e.code}]: ${e.message}\n`);
        process.exitCode = e.exitCode;
      } finally {
        process.off('SIGINT', onSigint);
      }
    });
}

function quote(s: string): string {
  return /^[\w./@:+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * Progress on a terminal: one bar per download. Elsewhere (logs, CI, tests): a line each 10 %,
 * so that a long download still shows it is alive.
 */
function consoleReporter(enabled: boolean): InstallReporter & { stop(): void } {
  let bar: cliProgress.SingleBar | null = null;
  const lastTenth = new Map<string, number>();
  const tty = enabled && process.stderr.isTTY;
  return {
    info(line) {
      if (bar) bar.stop();
      bar = null;
      process.stderr.write(`${line}\n`);
    },
    progress(file: string, p: DownloadProgress) {
      if (!enabled) return;
      if (tty && p.total) {
        if (!bar) {
          bar = new cliProgress.SingleBar(
            { stream: process.stderr, hideCursor: true, format: `${file} [{bar}] {percentage}% {got} of {all} eta {eta_formatted}` },
            cliProgress.Presets.shades_classic,
          );
          bar.start(p.total, p.received, { got: formatBytes(p.received), all: formatBytes(p.total) });
        }
        bar.update(p.received, { got: formatBytes(p.received), all: formatBytes(p.total) });
        return;
      }
      const tenth = p.total ? Math.floor((p.received / p.total) * 10) : Math.floor(p.received / 100e6);
      if (lastTenth.get(file) === tenth) return;
      lastTenth.set(file, tenth);
      process.stderr.write(p.total ? `${file}: ${tenth * 10}% (${formatBytes(p.received)} of ${formatBytes(p.total)})\n` : `${file}: ${formatBytes(p.received)}\n`);
    },
    done() {
      bar?.stop();
      bar = null;
    },
    stop() {
      bar?.stop();
      bar = null;
    },
  };
}
