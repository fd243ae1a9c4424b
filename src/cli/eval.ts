/**
 * `omnitag eval <labelled set>`: how well a model and a vocabulary tag labelled images, as RAM++'s
 * evaluation measures it (src/eval), and per-tag thresholds calibrated on them.
 *   omnitag eval datasets/openimages_common_214                       the pack's built-in tags
 *   omnitag eval datasets/openimages_rare_200 --open-set               the set's LLM descriptions
 *   omnitag eval photos/labels.csv --vocab tags.json                   a {tag: [descriptions]} file
 *   omnitag eval photos/labels.csv --api http://host/graphql --vocabulary <id>   a tenant's vocabulary (OMNITAG_API_KEY)
 *   … --calibrate maxF1 [--apply]                                      thresholds (applied through the API)
 * Writes report.json, report.md, scores.jsonl (the cache a rerun resumes from) and the plots
 * (pr-best, pr-worst, ap-histogram; .svg and .png) to --out.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Command, Option } from 'commander';
import { DEMO_MODEL_WARNING } from '../core/demo-model.ts';
import { AppError, badInput, ErrorCode } from '../core/errors.ts';
import { sha256Hex } from '../core/hash.ts';
import { calibrateThresholds, type CalibrationResult, type CalibrationTarget } from '../eval/calibration.ts';
import { readLabelledSet, type LabelledImage, type LabelledSet } from '../eval/datasets.ts';
import { buildTargets, precisionRecallCurve } from '../eval/metrics.ts';
import { apHistogramSvg, precisionRecallSvg, svgToPng } from '../eval/plots.ts';
import { buildReport, calibrationMarkdown, reportMarkdown, type EvalReport } from '../eval/report.ts';
import { ScoreCache } from '../eval/score-cache.ts';
import { buildLabelBank, tagEmbeddings, type LabelBank, type LocalInferenceEngine, type ResizeMode } from '../inference/index.ts';
import { openEngine, openSetVocabulary, positiveInt, probability, progressBar, withEngineOptions, type EngineFlags } from './engine-flags.ts';
import { graphql, type GraphqlEndpoint } from './graphql-client.ts';
import { defaultDescription, readVocabularyFile } from './tag-vocabulary.ts';

interface EvalFlags extends EngineFlags {
  taglist?: string;
  vocab?: string;
  openSet?: boolean;
  api?: string;
  key?: string;
  vocabulary?: string;
  threshold?: number;
  out?: string;
  cache?: string;
  skipMissing?: boolean;
  curves: number;
  calibrate?: 'maxF1' | 'precision';
  precision?: number;
  minPositives: number;
  apply?: boolean;
  resize: ResizeMode;
  progress: boolean;
}

/** What scores images over the set's tag list, column by column. */
interface Scorer {
  /** Identity of the scores (model, vocabulary, tag list): keys the cache. */
  key: string;
  describe: Record<string, unknown>;
  /** Thresholds in force per tag-list column. */
  thresholds: Float32Array;
  /** How many images to score at once. */
  lanes: number;
  score(files: string[], signal: AbortSignal): Promise<Array<{ scores?: Float32Array; error?: { code: string; message: string } }>>;
  close(): Promise<void>;
}

export function registerEvalCommand(program: Command): void {
  withEngineOptions(
    program
      .command('eval')
      .description('measure tagging on labelled images (mAP, per-tag AP, P/R, F1) and calibrate thresholds')
      .argument('<set>', "a folder in upstream RAM++'s layout (<name>_ram_taglist.txt, <name>_ram_annots.txt, imgs/), or a .csv / .json of image → tags")
      .option('--taglist <file>', 'the tags to measure, one per line; labels of other tags are set aside (default: the set’s tag list, or every tag it labels)')
      .option('--vocab <builtin|file.json>', 'score with the pack’s built-in tags, or a {tag: [descriptions]} file (open-set)')
      .option('--open-set', 'score every tag from descriptions: the set’s <name>_llm_tag_descriptions.json, else "a photo of a {tag}."')
      .option('--api <url>', 'score through an Omnitag server’s GraphQL endpoint with a tenant’s vocabulary (--vocabulary, key in OMNITAG_API_KEY)')
      .addOption(new Option('--key <key>', 'tenant API key for --api').env('OMNITAG_API_KEY'))
      .option('--vocabulary <id>', 'the tenant’s vocabulary id, with --api')
      .option('--threshold <p>', 'one threshold for every tag instead of the thresholds in force', probability)
      .option('--out <dir>', 'where the report, plots and score cache go (default: eval-<set name>)')
      .option('--cache <file>', 'score cache to resume from and add to (default: <out>/scores.jsonl)')
      .option('--skip-missing', 'leave out images that are missing or cannot be decoded (default: stop and name them)')
      .option('--curves <n>', 'tags per precision–recall plot (best and worst)', positiveInt, 5)
      .addOption(new Option('--calibrate <target>', 'also propose per-tag thresholds: the best F1, or a precision (--precision)').choices(['maxF1', 'precision']))
      .option('--precision <p>', 'target precision for --calibrate precision', probability, 0.9)
      .option('--min-positives <n>', 'tags with fewer labelled positives keep their threshold', positiveInt, 10)
      .option('--apply', 'apply the calibration to the --api vocabulary as threshold overrides, in one revision (ADMIN key)')
      .addOption(new Option('--resize <mode>', 'resizing').choices(['exact', 'fast']).default('exact'))
      .option('--no-progress', 'no progress output'),
  ).action((set: string, flags: EvalFlags) => evaluate(set, flags));
}

async function evaluate(location: string, flags: EvalFlags): Promise<void> {
  if (flags.apply && !flags.calibrate) throw badInput('--apply applies a calibration: add --calibrate maxF1 or --calibrate precision');
  if (flags.apply && !flags.api) throw badInput('--apply changes a tenant’s vocabulary through the API: add --api and --vocabulary');
  if (flags.api && (flags.vocab || flags.openSet)) throw badInput('--api scores with the tenant’s vocabulary: leave out --vocab and --open-set');
  const set = await readLabelledSet(location, { taglist: flags.taglist });
  const out = path.resolve(flags.out ?? `eval-${set.name}`);
  await mkdir(out, { recursive: true });

  const missing = set.images.filter((i) => !i.file);
  if (missing.length > 0 && !flags.skipMissing) {
    throw badInput(`${missing.length} of ${set.images.length} labelled images are not there (first: ${missing.slice(0, 3).map((i) => i.id).join(', ')}); add them, or leave them out with --skip-missing`);
  }
  // a tag list given on the command line chooses the tags to measure: other labels are set aside
  if (flags.taglist) {
    const measured = new Set(set.taglist);
    let aside = 0;
    for (const image of set.images) {
      const kept = image.tags.filter((t) => measured.has(t));
      aside += image.tags.length - kept.length;
      image.tags = kept;
    }
    if (aside > 0 && flags.progress) process.stderr.write(`${aside} label(s) of tags outside --taglist set aside\n`);
  }
  const targetsAll = buildTargets(set.taglist, set.images.map((i) => i.tags));

  const scorer = flags.api ? await apiScorer(set, flags) : await packScorer(set, flags);
  const cache = await ScoreCache.open(path.resolve(flags.cache ?? path.join(out, 'scores.jsonl')), scorer.key, set.taglist.length);
  const abort = new AbortController();
  const onSigint = () => abort.abort(new AppError(ErrorCode.CANCELLED, 'interrupted'));
  process.once('SIGINT', onSigint);
  if (flags.progress && cache.entries.size > 0) process.stderr.write(`${cache.entries.size} image(s) already scored in the cache\n`);
  try {
    await scoreAll(set.images.filter((i) => i.file && !cache.entries.has(i.id)), scorer, cache, flags.progress, abort.signal);
  } finally {
    process.off('SIGINT', onSigint);
    await cache.close();
    await scorer.close();
  }
  if (abort.signal.aborted) throw new AppError(ErrorCode.CANCELLED, `interrupted; the scores so far are in ${cache.file}, run the same command to resume`);

  // the images the report covers: labelled, present and scored
  const k = set.taglist.length;
  const kept: number[] = [];
  const skipped: EvalReport['dataset']['skipped'] = missing.map((i) => ({ image: i.id, code: ErrorCode.NOT_FOUND, message: 'no such image file' }));
  set.images.forEach((img, i) => {
    if (!img.file) return;
    const entry = cache.entries.get(img.id);
    if (entry?.scores) kept.push(i);
    else skipped.push({ image: img.id, code: entry?.error?.code ?? ErrorCode.INTERNAL_SERVER_ERROR, message: entry?.error?.message ?? 'not scored' });
  });
  const failed = skipped.length - missing.length;
  if (failed > 0 && !flags.skipMissing) {
    const first = skipped[missing.length]!;
    throw badInput(`${failed} image(s) could not be scored (first: ${first.image}: ${first.code} ${first.message}); the others are cached in ${cache.file}: rerun with --skip-missing to leave these out`);
  }
  if (kept.length === 0) throw badInput('no image could be scored');
  const scores = new Float32Array(kept.length * k);
  const targets = new Uint8Array(kept.length * k);
  kept.forEach((src, row) => {
    scores.set(cache.entries.get(set.images[src]!.id)!.scores!, row * k);
    targets.set(targetsAll.subarray(src * k, (src + 1) * k), row * k);
  });
  const thresholds = flags.threshold !== undefined ? new Float32Array(k).fill(flags.threshold) : scorer.thresholds;

  const report = buildReport({
    dataset: { name: set.name, layout: set.layout, images: kept.length, tags: k, skipped },
    scorer: scorer.describe,
    taglist: set.taglist,
    scores,
    targets,
    thresholds,
  });
  await writeFile(path.join(out, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
  await writeFile(path.join(out, 'report.md'), reportMarkdown(report));
  await writePlots(out, report, scores, targets, flags.curves);
  process.stdout.write(
    `${set.name}: ${kept.length} images, ${k} tags — mAP ${(report.mAP * 100).toFixed(2)}, mean precision ${(report.meanPrecision * 100).toFixed(2)}, mean recall ${(report.meanRecall * 100).toFixed(2)}, mean F1 ${(report.meanF1 * 100).toFixed(2)}\n`,
  );
  process.stdout.write(`report: ${path.join(out, 'report.md')} (and .json), plots: ${out}/{pr-best,pr-worst,ap-histogram}.{svg,png}\n`);

  if (flags.calibrate) {
    const target: CalibrationTarget = flags.calibrate === 'maxF1' ? { kind: 'maxF1' } : { kind: 'precision', precision: flags.precision ?? 0.9 };
    const result = calibrateThresholds({ taglist: set.taglist, scores, targets, images: kept.length, thresholds, target, minPositives: flags.minPositives });
    await writeFile(path.join(out, 'calibration.json'), `${JSON.stringify(result, null, 2)}\n`);
    await writeFile(path.join(out, 'calibration.md'), calibrationMarkdown(result));
    process.stdout.write(`calibration: ${result.changes.length} threshold(s) to change, ${result.kept.length} kept — ${path.join(out, 'calibration.md')}\n`);
    if (flags.apply) await applyCalibration(endpointOf(flags), flags.vocabulary!, result);
  }
}

async function scoreAll(todo: LabelledImage[], scorer: Scorer, cache: ScoreCache, progress: boolean, signal: AbortSignal): Promise<void> {
  if (todo.length === 0) return;
  const report = progressBar(todo.length, 'scoring', progress, { lines: true });
  const CHUNK = 4;
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(scorer.lanes, Math.ceil(todo.length / CHUNK)) }, async () => {
      while (next < todo.length && !signal.aborted) {
        const part = todo.slice(next, next + CHUNK);
        next += part.length;
        const results = await scorer.score(
          part.map((i) => i.file!),
          signal,
        ).catch((e: unknown) => {
          if (signal.aborted) return null;
          throw e;
        });
        if (!results) return;
        for (const [j, r] of results.entries()) await cache.add(part[j]!.id, r);
        report.increment(part.length);
      }
    }),
  );
  report.stop();
}

// ── scoring with a model pack ───────────────────────────────────────────────────────────────

async function packScorer(set: LabelledSet, flags: EvalFlags): Promise<Scorer> {
  const engine = await openEngine(flags, flags.resize);
  try {
    if (engine.info.randomWeights) process.stderr.write(`note: ${DEMO_MODEL_WARNING.message}\n`);
    // the distinct names of the tag list, each scored once; duplicate entries share its column
    const names = [...new Set(set.taglist)];
    const { bank, source, vocabularyId } = await packBank(engine, set, names, flags);
    const rowByName = new Map(names.map((n, i) => [n, i]));
    const rowOf = set.taglist.map((t) => rowByName.get(t)!);
    const thresholds = Float32Array.from(rowOf, (r) => bank.thresholds[r]!);
    return {
      key: sha256Hex(JSON.stringify({ pack: engine.info.packName, precision: engine.info.precision, text: engine.info.textEncoderId, resize: flags.resize, vocabulary: vocabularyId, taglist: set.taglist })),
      describe: { pack: engine.info.packName, precision: engine.info.precision, provider: engine.info.provider, randomWeights: engine.info.randomWeights, vocabulary: source },
      thresholds,
      lanes: Math.max(1, Math.ceil((flags.batchSize * 2) / 4)),
      async score(files, signal) {
        return Promise.all(
          files.map(async (file) => {
            try {
              const bytes = await readFile(file);
              const [scored] = await engine.scoreImages([bytes], [bank], { signal });
              const p = scored!.scores[0]!.probabilities;
              return { scores: Float32Array.from(rowOf, (r) => p[r]!) };
            } catch (e) {
              if (signal.aborted) throw e;
              const err = e as { code?: string; message?: string };
              return { error: { code: err.code ?? ErrorCode.INTERNAL_SERVER_ERROR, message: err.message ?? String(e) } };
            }
          }),
        );
      },
      close: () => engine.dispose(),
    };
  } catch (e) {
    await engine.dispose();
    throw e;
  }
}

/** The bank of the distinct tag names: the pack's built-in rows, or descriptions embedded now. */
async function packBank(engine: LocalInferenceEngine, set: LabelledSet, names: string[], flags: EvalFlags): Promise<{ bank: LabelBank; source: string; vocabularyId: string }> {
  const vocabFile = flags.vocab && flags.vocab !== 'builtin' ? flags.vocab : flags.openSet ? set.descriptionsFile : null;
  if (vocabFile || flags.openSet) {
    const descriptions = new Map<string, string[]>();
    if (vocabFile) {
      const file = await readVocabularyFile(vocabFile);
      file.names.forEach((n, i) => descriptions.set(n, file.descriptions[i]!));
      const absent = names.filter((n) => !descriptions.has(n));
      if (absent.length) throw badInput(`${vocabFile} has no descriptions for ${absent.length} tag(s) of the set: ${absent.slice(0, 5).map((n) => JSON.stringify(n)).join(', ')}`);
    }
    const lists = names.map((n) => descriptions.get(n) ?? [defaultDescription(n)]);
    const contentHash = sha256Hex(JSON.stringify([names, lists]));
    const vocab = await openSetVocabulary(engine, { names, descriptions: lists, contentHash }, vocabFile ?? 'a photo of a {tag}.', undefined, flags.progress);
    return { bank: vocab.bank, source: vocab.source, vocabularyId: `open:${contentHash}` };
  }
  // upstream's closed set: each tag of the set is a built-in tag of the same name
  const builtin = await engine.builtinVocabulary();
  const index = new Map(builtin.tags.map((t, i) => [t.name, i]));
  const absent = names.filter((n) => !index.has(n));
  if (absent.length) {
    throw badInput(`${absent.length} tag(s) of the set are not built-in tags of ${engine.info.packName}: ${absent.slice(0, 5).map((n) => JSON.stringify(n)).join(', ')}${absent.length > 5 ? ', …' : ''}; score them from descriptions with --open-set or --vocab`);
  }
  // only the set's rows, copied out of the built-in segment: the decoder's cost is per tag
  const rows = names.map((n) => index.get(n)!);
  const bank = buildLabelBank({
    key: `eval:builtin:${sha256Hex(names.join('\n'))}`,
    embedDim: engine.info.embedDim,
    tags: rows.map((r) => ({ descriptions: tagEmbeddings(builtin.bank, r), threshold: builtin.bank.thresholds[r]! })),
  });
  return { bank, source: 'builtin', vocabularyId: 'builtin' };
}

// ── scoring through the API with a tenant's vocabulary ──────────────────────────────────────

interface ApiTag {
  id: string;
  name: string;
  threshold: number;
}

function endpointOf(flags: EvalFlags): GraphqlEndpoint {
  if (!flags.key) throw badInput('--api needs a tenant key: set OMNITAG_API_KEY or pass --key');
  return { url: flags.api!, key: flags.key };
}

const VOCABULARY_TAGS = `query EvalVocabulary($id: ID!, $after: String) {
  vocabulary(id: $id) { id name revision tags(first: 100, after: $after) { edges { node { id name threshold enabled } } pageInfo { hasNextPage endCursor } } }
}`;

const TAG_IMAGES = `mutation EvalTagImages($vocabularyId: ID!, $images: [ImageInput!]!) {
  tagImages(vocabularyId: $vocabularyId, images: $images, options: { includeAll: true }) {
    index result { revision scores { name score } } error { code message }
  }
}`;

async function vocabularyTags(endpoint: GraphqlEndpoint, id: string): Promise<{ name: string; revision: number; tags: ApiTag[] }> {
  const tags: ApiTag[] = [];
  let after: string | null = null;
  let head: { name: string; revision: number } | null = null;
  for (;;) {
    type Page = { vocabulary: { name: string; revision: number; tags: { edges: Array<{ node: ApiTag & { enabled: boolean } }>; pageInfo: { hasNextPage: boolean; endCursor: string | null } } } };
    const page: Page = await graphql<Page>(endpoint, VOCABULARY_TAGS, { id, after });
    head ??= page.vocabulary;
    for (const e of page.vocabulary.tags.edges) if (e.node.enabled) tags.push({ id: e.node.id, name: e.node.name, threshold: e.node.threshold });
    if (!page.vocabulary.tags.pageInfo.hasNextPage) break;
    after = page.vocabulary.tags.pageInfo.endCursor;
  }
  return { name: head!.name, revision: head!.revision, tags };
}

async function apiScorer(set: LabelledSet, flags: EvalFlags): Promise<Scorer> {
  const endpoint = endpointOf(flags);
  if (!flags.vocabulary) throw badInput('--api needs the vocabulary to score with: --vocabulary <id>');
  const vocab = await vocabularyTags(endpoint, flags.vocabulary);
  const byName = new Map(vocab.tags.map((t) => [t.name, t]));
  const absent = [...new Set(set.taglist)].filter((n) => !byName.has(n));
  if (absent.length) throw badInput(`${absent.length} tag(s) of the set are not enabled tags of vocabulary "${vocab.name}": ${absent.slice(0, 5).map((n) => JSON.stringify(n)).join(', ')}`);
  const thresholds = Float32Array.from(set.taglist, (n) => byName.get(n)!.threshold);
  return {
    key: sha256Hex(JSON.stringify({ api: endpoint.url, vocabulary: flags.vocabulary, revision: vocab.revision, taglist: set.taglist })),
    describe: { api: endpoint.url, vocabulary: vocab.name, vocabularyId: flags.vocabulary, revision: vocab.revision },
    thresholds,
    lanes: 2,
    async score(files, signal) {
      const images = await Promise.all(files.map(async (f) => ({ base64: (await readFile(f)).toString('base64') })));
      type Answer = { tagImages: Array<{ index: number; result: { revision: number; scores: Array<{ name: string; score: number }> } | null; error: { code: string; message: string } | null }> };
      const answer = await graphql<Answer>(endpoint, TAG_IMAGES, { vocabularyId: flags.vocabulary, images }, signal);
      return answer.tagImages.map((o) => {
        if (!o.result) return { error: o.error ?? { code: ErrorCode.INTERNAL_SERVER_ERROR, message: 'no result' } };
        const score = new Map(o.result.scores.map((s) => [s.name, s.score]));
        return { scores: Float32Array.from(set.taglist, (n) => score.get(n) ?? 0) };
      });
    },
    close: async () => {},
  };
}

const SET_THRESHOLDS = `mutation EvalSetThresholds($vocabularyId: ID!, $thresholds: [TagThresholdInput!]!) {
  setTagThresholds(vocabularyId: $vocabularyId, thresholds: $thresholds) { vocabulary { revision } results { id ok error { code message } } }
}`;

/** The changes as threshold overrides, all in one revision of the vocabulary. */
async function applyCalibration(endpoint: GraphqlEndpoint, vocabularyId: string, result: CalibrationResult): Promise<void> {
  if (result.changes.length === 0) {
    process.stdout.write('nothing to apply\n');
    return;
  }
  const vocab = await vocabularyTags(endpoint, vocabularyId);
  const ids = new Map(vocab.tags.map((t) => [t.name, t.id]));
  const thresholds = result.changes.map((c) => ({ tagId: ids.get(c.tag)!, threshold: c.new }));
  type Answer = { setTagThresholds: { vocabulary: { revision: number }; results: Array<{ id: string; ok: boolean; error: { code: string; message: string } | null }> } };
  const answer = await graphql<Answer>(endpoint, SET_THRESHOLDS, { vocabularyId, thresholds });
  const failed = answer.setTagThresholds.results.filter((r) => !r.ok);
  process.stdout.write(`applied ${thresholds.length - failed.length} threshold(s) to "${vocab.name}" in revision ${answer.setTagThresholds.vocabulary.revision}\n`);
  if (failed.length) {
    for (const f of failed) process.stderr.write(`  ${f.id}: ${f.error?.code} ${f.error?.message}\n`);
    process.exitCode = 1;
  }
}

// ── plots ───────────────────────────────────────────────────────────────────────────────────

async function writePlots(out: string, report: EvalReport, scores: Float32Array, targets: Uint8Array, count: number): Promise<void> {
  const n = report.dataset.images;
  const k = report.tags.length;
  // tags with positives only: a curve without positives says nothing
  const ranked = report.tags.filter((t) => t.positives > 0).sort((a, b) => b.ap - a.ap || a.column - b.column);
  const curve = (t: (typeof ranked)[number]) => ({ tag: t.tag, ap: t.ap, points: precisionRecallCurve(scores, targets, n, k, t.column) });
  const plots: Array<[string, string]> = [
    ['pr-best', precisionRecallSvg(`Precision–recall: the ${Math.min(count, ranked.length)} best tags (AP)`, ranked.slice(0, count).map(curve))],
    ['pr-worst', precisionRecallSvg(`Precision–recall: the ${Math.min(count, ranked.length)} worst tags (AP)`, ranked.slice(-count).reverse().map(curve))],
    ['ap-histogram', apHistogramSvg(`AP per tag: ${report.dataset.name} (mAP ${(report.mAP * 100).toFixed(1)})`, report.tags.map((t) => t.ap))],
  ];
  for (const [name, svg] of plots) {
    await writeFile(path.join(out, `${name}.svg`), svg);
    await writeFile(path.join(out, `${name}.png`), await svgToPng(svg));
  }
}
