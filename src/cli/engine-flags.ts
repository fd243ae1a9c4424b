/**
 * What the commands that run the engine share: its flags, opening it, progress bars, and the
 * vocabulary to score with (the pack's built-in tags or a {tag: [descriptions]} file).
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import cliProgress from 'cli-progress';
import { Command, InvalidArgumentError, Option } from 'commander';
import pino from 'pino';
import {
  buildLabelBank,
  composeLabelBank,
  createLocalInferenceEngine,
  ENGINE_DEFAULTS,
  type InferenceEngine,
  type LabelBank,
  type LocalInferenceEngine,
  type ProviderPreference,
  type ResizeMode,
} from '../inference/index.ts';
import type { ResultTag } from '../tagging/results.ts';
import { readVocabularyFile, type VocabularyFile } from './tag-vocabulary.ts';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const DEFAULT_PACK = process.env.OMNITAG_MODEL_PACK ?? path.join(repoRoot, 'packs', 'tiny');

export interface EngineFlags {
  pack: string;
  provider: ProviderPreference;
  threads?: number;
  workers: number;
  batchSize: number;
  verbose?: boolean;
}

export const positiveInt = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('expected a positive integer');
  return n;
};
export const probability = (v: string) => {
  const n = Number(v);
  if (!(n >= 0 && n <= 1)) throw new InvalidArgumentError('expected a number between 0 and 1');
  return n;
};

export function withEngineOptions(cmd: Command): Command {
  return cmd
    .option('--pack <dir>', 'model pack folder', DEFAULT_PACK)
    .addOption(new Option('--provider <name>', 'execution provider').choices(['cpu', 'cuda', 'cuda-or-cpu']).default('cpu'))
    .option('--threads <n>', 'onnxruntime threads per worker (default: all cores)', positiveInt)
    .option('--workers <n>', 'inference worker threads', positiveInt, ENGINE_DEFAULTS.workers)
    .option('--batch-size <n>', 'images per model run', positiveInt, ENGINE_DEFAULTS.maxBatchSize)
    .option('-v, --verbose', 'log the engine’s progress to stderr');
}

export async function openEngine(flags: EngineFlags, resize: ResizeMode = 'exact'): Promise<LocalInferenceEngine> {
  const logger = pino({ level: flags.verbose ? 'info' : 'warn', base: undefined }, pino.destination(2));
  const engine = await createLocalInferenceEngine({
    packDir: flags.pack,
    provider: flags.provider,
    intraOpThreads: flags.threads,
    workers: flags.workers,
    maxBatchSize: flags.batchSize,
    maxQueue: Math.max(256, flags.batchSize * 4),
    resize,
    // a short run would pay for shapes it may never use; the first batch warms its own shape
    warmup: false,
    logger,
  });
  await engine.start();
  return engine;
}

/**
 * A bar on a terminal. Elsewhere nothing, or with `lines` a line at every tenth (a long run in a
 * log shows it is alive).
 */
export function progressBar(total: number, label: string, enabled: boolean, { lines = false } = {}) {
  if (!enabled || total < 2 || (!process.stderr.isTTY && !lines)) return { increment(_n = 1) {}, stop() {} };
  if (!process.stderr.isTTY) {
    let done = 0;
    let tenth = 0;
    return {
      increment(n = 1) {
        done += n;
        if (Math.floor((done / total) * 10) <= tenth) return;
        tenth = Math.floor((done / total) * 10);
        process.stderr.write(`${label}: ${tenth * 10}% (${done} of ${total})\n`);
      },
      stop() {},
    };
  }
  const bar = new cliProgress.SingleBar(
    { stream: process.stderr, format: `${label} [{bar}] {value}/{total} {percentage}% eta {eta_formatted}`, hideCursor: true },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0);
  return { increment: (n = 1) => bar.increment(n), stop: () => bar.stop() };
}

/** The tags (in bank order, with their description texts when the file gave them) and the bank of one vocabulary. */
export interface ResolvedVocabulary {
  source: string;
  tags: ResultTag<string>[];
  bank: LabelBank;
}

export async function resolveVocabulary(
  engine: InferenceEngine,
  vocab: string,
  threshold: number | undefined,
  progress: boolean,
): Promise<ResolvedVocabulary> {
  if (vocab === 'builtin') {
    const builtin = await engine.builtinVocabulary();
    let bank = builtin.bank;
    if (threshold !== undefined) bank = composeLabelBank({ key: `${bank.key}:t${threshold}`, segments: bank.segments, tags: { ...bank, thresholds: new Float32Array(bank.tagCount).fill(threshold) } });
    const tags = builtin.tags.map((t) => ({ name: t.name, ...(t.nameZh ? { names: { zh: t.nameZh } } : {}) }));
    return { source: 'builtin', tags, bank };
  }
  return openSetVocabulary(engine, await readVocabularyFile(vocab), path.resolve(vocab), threshold, progress);
}

/** Tags described in words: their descriptions embedded with the pack's text encoder. */
export async function openSetVocabulary(engine: InferenceEngine, file: VocabularyFile, source: string, threshold: number | undefined, progress: boolean): Promise<ResolvedVocabulary> {
  const texts = file.descriptions.flat();
  const E = engine.info.embedDim;
  const embeddings = new Float32Array(texts.length * E);
  const bar = progressBar(texts.length, 'embedding descriptions', progress);
  let truncated = 0;
  const SLICE = 256;
  for (let start = 0; start < texts.length; start += SLICE) {
    const part = await engine.embedTexts(texts.slice(start, start + SLICE));
    embeddings.set(part.embeddings, start * E);
    truncated += part.truncated.filter(Boolean).length;
    for (let i = 0; i < part.truncated.length; i++) bar.increment();
  }
  bar.stop();
  if (truncated > 0) process.stderr.write(`note: ${truncated} of ${texts.length} descriptions were cut to ${engine.info.textContext} tokens\n`);
  let offset = 0;
  const openSet = threshold ?? 0.5;
  const bank = buildLabelBank({
    key: `cli:${file.contentHash}:${engine.info.textEncoderId}:t${openSet}`,
    embedDim: E,
    tags: file.descriptions.map((d) => {
      const descriptions = embeddings.subarray(offset * E, (offset + d.length) * E);
      offset += d.length;
      return { descriptions, threshold: openSet };
    }),
  });
  const tags = file.names.map((name, i) => ({ name, descriptions: file.descriptions[i]! }));
  return { source, tags, bank };
}

