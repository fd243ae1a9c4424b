/**
 * The `omnitag` command: tagging with a model pack, no server or database needed.
 *   omnitag tag [options] <images or folders...>   tag images with the built-in or a JSON vocabulary
 *                                                   (`images` is another name for it, and it is the default)
 *   omnitag embed [texts...]                        texts → L2-normalised embeddings (JSON)
 *   omnitag selftest                                check this runtime against the pack's self-test
 *   omnitag model install [ram-plus]                official checkpoints → a verified pack (model/command.ts)
 *   omnitag eval <labelled set>                     mAP, P/R and calibration on labelled images (eval.ts)
 * Run with `npx omnitag …` (package.json "bin": bin/omnitag.js), `npm run tag -- …`, or
 * `npx tsx src/cli/tag.ts …`.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Command, Option } from 'commander';
import { DEMO_MODEL_WARNING } from '../core/demo-model.ts';
import type { InferenceEngine, ResizeMode } from '../inference/index.ts';
import { renderHeatmapOverlay } from '../tagging/heatmap-overlay.ts';
import { tagResults } from '../tagging/results.ts';
import { openEngine, positiveInt, probability, progressBar, repoRoot, resolveVocabulary, withEngineOptions, type EngineFlags, type ResolvedVocabulary } from './engine-flags.ts';
import { registerEvalCommand } from './eval.ts';
import { collectImageFiles } from './image-files.ts';
import { registerModelCommands } from './model/command.ts';

interface TagFlags extends EngineFlags {
  vocab: string;
  threshold?: number;
  top?: number;
  minScore?: number;
  logits?: boolean;
  explain?: boolean;
  format?: 'json' | 'table';
  recursive?: boolean;
  resize: ResizeMode;
  progress: boolean;
  heatmaps?: string;
  heatmapSize: number;
}

interface TaggedImage {
  file: string;
  tags?: Array<Record<string, unknown>>;
  error?: { code: string; message: string };
}

async function tagImages(paths: string[], flags: TagFlags): Promise<void> {
  const files = await collectImageFiles(paths, flags.recursive ?? false);
  if (files.length === 0) throw new Error('no image files found');
  const engine = await openEngine(flags, flags.resize);
  if (engine.info.randomWeights) process.stderr.write(`note: ${DEMO_MODEL_WARNING.message}\n`);
  const abort = new AbortController();
  process.once('SIGINT', () => abort.abort('interrupted'));
  try {
    if (flags.heatmaps) {
      if (!engine.info.heatmaps) throw new Error(`the pack ${engine.info.packName} has no heat-map graph (export it with --heatmaps)`);
      await mkdir(flags.heatmaps, { recursive: true });
    }
    const vocab = await resolveVocabulary(engine, flags.vocab, flags.threshold, flags.progress);
    const results: TaggedImage[] = new Array(files.length);
    const stems = uniqueStems(files);
    const bar = progressBar(files.length, 'tagging', flags.progress);
    let next = 0;
    // enough callers in flight to fill batches, few enough to stay inside the queue
    const lanes = Math.min(files.length, flags.batchSize * 2);
    await Promise.all(
      Array.from({ length: lanes }, async () => {
        for (let i = next++; i < files.length && !abort.signal.aborted; i = next++) {
          results[i] = await tagOne(engine, files[i]!, stems[i]!, vocab, flags, abort.signal);
          bar.increment();
        }
      }),
    );
    bar.stop();
    const done = results.filter(Boolean);
    const format = flags.format ?? (process.stdout.isTTY ? 'table' : 'json');
    if (format === 'json') {
      const out = { pack: engine.info.packName, precision: engine.info.precision, provider: engine.info.provider, vocabulary: { source: vocab.source, tags: vocab.tags.length }, images: done };
      process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    } else {
      process.stdout.write(renderTable(done));
    }
    if (done.some((r) => r.error) || abort.signal.aborted) process.exitCode = 1;
  } finally {
    await engine.dispose();
  }
}

/**
 * Each file's name without folder and extension, made unique within the run (`photo`,
 * `photo-2`, …) so that the heat maps of same-named files in different folders do not overwrite
 * each other.
 */
function uniqueStems(files: readonly string[]): string[] {
  const used = new Set<string>();
  return files.map((file) => {
    const base = path.basename(file, path.extname(file));
    let stem = base;
    for (let n = 2; used.has(stem); n++) stem = `${base}-${n}`;
    used.add(stem);
    return stem;
  });
}

async function tagOne(engine: InferenceEngine, file: string, stem: string, vocab: ResolvedVocabulary, flags: TagFlags, signal: AbortSignal): Promise<TaggedImage> {
  try {
    const bytes = await readFile(file);
    const [scored] = await engine.scoreImages([bytes], [vocab.bank], { explain: flags.explain ?? false, signal });
    const results = tagResults(scored!.scores[0]!, vocab.tags, {
      passedOnly: flags.top === undefined && flags.minScore === undefined,
      topK: flags.top,
      minScore: flags.minScore,
      explain: flags.explain,
    });
    // one overlay per returned tag, from one more decoder pass over those tags only
    const overlays = new Map<number, string>();
    if (flags.heatmaps) {
      const maps = await engine.heatmaps(scored!.embeddings, vocab.bank, results.map((t) => t.index), { signal });
      for (const [k, m] of maps.entries()) {
        const out = path.join(flags.heatmaps, `${stem}.${fileSafe(results[k]!.name)}.png`);
        await writeFile(out, await renderHeatmapOverlay(bytes, m, flags.heatmapSize));
        overlays.set(m.tag, out);
      }
    }
    return {
      file,
      tags: results.map((t) => ({
        name: t.name,
        ...(t.tag.names?.zh ? { nameZh: t.tag.names.zh } : {}),
        probability: round(t.probability),
        threshold: round(t.threshold),
        passed: t.passed,
        ...(flags.logits ? { logit: t.logit } : {}),
        ...(overlays.has(t.index) ? { heatmap: overlays.get(t.index) } : {}),
        ...(t.explanation
          ? {
              descriptions: t.explanation.map((d) => ({
                // a vocabulary file has the texts; the built-in one has embeddings only
                ...(t.tag.descriptions ? { text: d.description } : { index: d.index }),
                weight: round(d.weight),
              })),
            }
          : {}),
      })),
    };
  } catch (e) {
    const err = e as { code?: string; message?: string };
    return { file, error: { code: err.code ?? 'ERROR', message: err.message ?? String(e) } };
  }
}

const round = (x: number) => Math.round(x * 1e4) / 1e4;
/** A tag name as part of a file name: letters, digits, '-' and '_' kept, the rest '_'. */
const fileSafe = (name: string) => name.replace(/[^\p{L}\p{N}_-]+/gu, '_').slice(0, 80) || 'tag';

function renderTable(results: TaggedImage[]): string {
  const lines: string[] = [];
  for (const r of results) {
    lines.push(r.file);
    if (r.error) lines.push(`  error ${r.error.code}: ${r.error.message}`);
    else if (!r.tags?.length) lines.push('  (no tag passed its threshold; try --top 5)');
    for (const t of r.tags ?? []) {
      const mark = t.passed ? '✓' : ' ';
      const name = t.nameZh ? `${t.name} (${t.nameZh})` : String(t.name);
      lines.push(`  ${mark} ${Number(t.probability).toFixed(3)}  > ${Number(t.threshold).toFixed(2)}  ${name}`);
      for (const d of (t.descriptions as Array<{ text?: string; index?: number; weight: number }> | undefined) ?? []) {
        const text = d.text?.replace(/\s+/g, ' ') ?? `description #${d.index}`;
        lines.push(`        ${d.weight.toFixed(3)}  ${text.length > 90 ? `${text.slice(0, 87)}...` : text}`);
      }
    }
  }
  return `${lines.join('\n')}\n`;
}

async function embedTexts(texts: string[], flags: EngineFlags & { file?: string }): Promise<void> {
  const all = [...texts];
  if (flags.file) {
    const content = flags.file === '-' ? await readStdin() : await readFile(flags.file, 'utf8');
    all.push(...content.split(/\r?\n/).filter((l) => l.trim()));
  }
  if (all.length === 0) throw new Error('no texts: pass them as arguments or with --file');
  const engine = await openEngine(flags);
  try {
    const out = await engine.embedTexts(all);
    const rows = all.map((text, i) => ({
      text,
      truncated: out.truncated[i],
      embedding: Array.from(out.embeddings.subarray(i * out.dim, (i + 1) * out.dim)),
    }));
    process.stdout.write(`${JSON.stringify({ textEncoderId: out.textEncoderId, dim: out.dim, texts: rows })}\n`);
  } finally {
    await engine.dispose();
  }
}

async function selftest(flags: EngineFlags): Promise<void> {
  const engine = await openEngine(flags);
  try {
    const report = await engine.selftest();
    if (!report) {
      process.stdout.write(`${engine.info.packName}: the pack has no self-test\n`);
      return;
    }
    for (const c of report.checks) {
      process.stdout.write(`${c.ok ? 'ok  ' : 'FAIL'}  ${c.name.padEnd(44)} max |diff| ${c.maxAbsDiff.toExponential(2)} (tolerance ${c.tolerance})\n`);
    }
    process.stdout.write(`${report.pack} (${engine.info.precision}) on ${engine.info.provider}: ${report.ok ? 'self-test passed' : 'self-test FAILED'}\n`);
    if (!report.ok) process.exitCode = 1;
  } finally {
    await engine.dispose();
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

const program = new Command('omnitag').description('Tag images with an Omnitag model pack (RAM++)').showHelpAfterError();

withEngineOptions(
  program
    .command('tag', { isDefault: true })
    .alias('images')
    .description('tag image files and folders (the default command)')
    .argument('<paths...>', 'image files or folders')
    .option('--vocab <builtin|file.json>', 'vocabulary: the pack’s built-in tags, or a JSON file {tag: [descriptions]}', 'builtin')
    .option('--threshold <p>', 'threshold for every tag (default: per-tag for built-in, 0.5 for open-set)', probability)
    .option('--top <k>', 'show the k most probable tags, passed or not', positiveInt)
    .option('--min-score <p>', 'show tags with at least this probability', probability)
    .option('--logits', 'include logits')
    .option('--explain', 'show the descriptions that weighed most for each tag')
    .option('--heatmaps <dir>', 'write one PNG per image and shown tag: its heat map over the image (<image>.<tag>.png; same-named images get -2, -3…)')
    .option('--heatmap-size <px>', 'longer side of those PNGs (16–1024)', positiveInt, 256)
    .addOption(new Option('--format <format>', 'output (default: table on a terminal, else JSON)').choices(['json', 'table']))
    .option('-r, --recursive', 'descend into sub-folders')
    .addOption(new Option('--resize <mode>', 'resizing').choices(['exact', 'fast']).default('exact'))
    .option('--no-progress', 'no progress bar'),
).action((paths: string[], flags: TagFlags) => tagImages(paths, flags));

withEngineOptions(
  program
    .command('embed')
    .description('embed texts with the pack’s text encoder (JSON to stdout)')
    .argument('[texts...]', 'texts to embed')
    .option('--file <path>', 'read more texts from a file, one per line (- for stdin)'),
).action((texts: string[], flags: EngineFlags & { file?: string }) => embedTexts(texts, flags));

withEngineOptions(program.command('selftest').description('check this runtime against the pack’s self-test')).action((flags: EngineFlags) =>
  selftest(flags),
);

registerModelCommands(program, repoRoot);
registerEvalCommand(program);

program.parseAsync().catch((e: unknown) => {
  process.stderr.write(`error: ${(e as Error).message}\n`);
  process.exit(2);
});
