/**
 * `omnitag eval` end to end with the tiny pack: a labelled set made here (upstream's layout, with
 * a repeated tag-list entry and an image without labels; and a CSV), the report, the plots,
 * the score cache a second run resumes from, calibration, and the errors of bad sets.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readLabelledSet } from '../../src/eval/datasets.ts';
import { buildTargets, meanAveragePrecision, precisionRecall, predictions } from '../../src/eval/metrics.ts';
import { repoRoot, testPackDir } from '../inference/helpers.ts';

const run = promisify(execFile);
const tmp = mkdtempSync(path.join(os.tmpdir(), 'omnitag-eval-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const packDir = testPackDir();
const tsx = path.join(repoRoot, 'node_modules', '.bin', 'tsx');
const cli = (...args: string[]) =>
  run(tsx, ['src/cli/tag.ts', ...args, '--pack', packDir!, '--threads', '1'], { cwd: repoRoot, maxBuffer: 64 << 20 }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );

/** The cache's scores by image id. */
function cachedScores(file: string): Map<string, Float32Array> {
  const lines = readFileSync(file, 'utf8').trim().split('\n').slice(1);
  return new Map(
    lines.map((l) => {
      const row = JSON.parse(l) as { image: string; scores: string };
      const b = Buffer.from(row.scores, 'base64');
      return [row.image, new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength))];
    }),
  );
}

const set = path.join(tmp, 'mini');
const annots = ['img0,cat', 'img1,dog,car', 'img2', 'img3,car', 'img4,cat,dog', 'img5,car'];
const taglist = ['cat', 'dog', 'car', 'cat'];
const builtinThresholds = () => {
  const tags = JSON.parse(readFileSync(path.join(packDir!, 'builtin', 'tags.json'), 'utf8')) as Array<{ name: string; threshold?: number }>;
  return new Map(tags.map((t) => [t.name, t.threshold ?? 0.68]));
};

beforeAll(async () => {
  mkdirSync(path.join(set, 'imgs'), { recursive: true });
  const colours = [
    [200, 30, 30],
    [30, 200, 30],
    [30, 30, 200],
    [200, 200, 30],
    [120, 120, 120],
    [10, 10, 10],
  ];
  await Promise.all(
    colours.map(([r, g, b], i) =>
      sharp({ create: { width: 80 + i * 7, height: 60, channels: 3, background: { r: r!, g: g!, b: b! } } })
        .jpeg()
        .toFile(path.join(set, 'imgs', `img${i}.jpg`)),
    ),
  );
  writeFileSync(path.join(set, 'mini_ram_taglist.txt'), `${taglist.join('\n')}\n`);
  writeFileSync(path.join(set, 'mini_ram_annots.txt'), `${annots.join('\n')}\n`);
});

describe.skipIf(!packDir)('omnitag eval', () => {
  it('reads upstream’s layout: .jpg added to the image ids, labels by name', async () => {
    const s = await readLabelledSet(set);
    expect(s).toMatchObject({ name: 'mini', layout: 'upstream', taglist, descriptionsFile: null });
    expect(s.images.map((i) => [i.id, path.basename(i.file!), i.tags])).toEqual(annots.map((a) => [a.split(',')[0], `${a.split(',')[0]}.jpg`, a.split(',').slice(1)]));
  });

  it('reads labels by tag-list position, as upstream’s HICO and ImageNet-multi files give them', async () => {
    const dir = path.join(tmp, 'hico');
    mkdirSync(dir);
    writeFileSync(path.join(dir, 'hico_taglist.txt'), 'ride horse\nfeed cat\nhold cup\n');
    writeFileSync(path.join(dir, 'hico_annots.txt'), 'a.jpg,2 0\nb.jpg,1\nc.jpg\n');
    const s = await readLabelledSet(dir);
    expect(s.images.map((i) => i.tags)).toEqual([['hold cup', 'ride horse'], ['feed cat'], []]);
    writeFileSync(path.join(dir, 'hico_annots.txt'), 'a.jpg,3\n');
    await expect(readLabelledSet(dir)).rejects.toThrow(/label 3, past the 3 tags/);
  });

  it('reports mAP, per-tag AP and P/R of the built-in tags, plots them, and resumes from its cache', async () => {
    const out = path.join(tmp, 'out-upstream');
    const first = await cli('eval', set, '--out', out);
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/^mini: 6 images, 4 tags — mAP \d+\.\d\d/);
    const report = JSON.parse(readFileSync(path.join(out, 'report.json'), 'utf8'));
    expect(report.dataset).toMatchObject({ name: 'mini', layout: 'upstream', images: 6, tags: 4, skipped: [] });
    expect(report.scorer).toMatchObject({ vocabulary: 'builtin' });

    // the report is the metrics of the cached scores, row for row in the set's order
    const cache = cachedScores(path.join(out, 'scores.jsonl'));
    expect([...cache.keys()].sort()).toEqual(annots.map((a) => a.split(',')[0]).sort());
    const scores = new Float32Array(24);
    annots.forEach((a, i) => scores.set(cache.get(a.split(',')[0]!)!, i * 4));
    // the repeated entry is the same tag: the same scores
    for (let i = 0; i < 6; i++) expect(scores[i * 4 + 3]).toBe(scores[i * 4]);
    const targets = buildTargets(taglist, annots.map((a) => a.split(',').slice(1)));
    const expected = meanAveragePrecision(scores, targets, 6, 4);
    expect(report.mAP).toBeCloseTo(expected.mAP, 12);
    expect(report.tags.map((t: { ap: number }) => t.ap)).toEqual([...expected.ap]);
    // thresholds in force: the pack's per-tag ones
    const th = builtinThresholds();
    const thresholds = taglist.map((t) => Math.fround(th.get(t)!));
    expect(report.tags.map((t: { threshold: number }) => t.threshold)).toEqual(thresholds);
    const pr = precisionRecall(predictions(scores, thresholds, taglist, 6), targets, 6, 4);
    expect(report.meanPrecision).toBeCloseTo(pr.meanPrecision, 12);
    expect(report.meanRecall).toBeCloseTo(pr.meanRecall, 12);

    // the scores are the engine's: the tag command gives the same probabilities for these tags
    const tagged = await cli('tag', path.join(set, 'imgs', 'img1.jpg'), '--min-score', '0', '--format', 'json', '--no-progress');
    const probs = new Map((JSON.parse(tagged.stdout).images[0].tags as Array<{ name: string; probability: number }>).map((t) => [t.name, t.probability]));
    taglist.forEach((t, c) => expect(cache.get('img1')![c]).toBeCloseTo(probs.get(t)!, 4));

    const md = readFileSync(path.join(out, 'report.md'), 'utf8');
    expect(md).toContain('| mAP | mean precision | mean recall | mean F1 |');
    expect(md.match(/^\| (cat|dog|car) \|/gm)).toHaveLength(4);
    for (const plot of ['pr-best', 'pr-worst', 'ap-histogram']) {
      expect(readFileSync(path.join(out, `${plot}.svg`), 'utf8')).toMatch(/^<svg [^>]*>[\s\S]*<\/svg>\n$/);
      const meta = await sharp(path.join(out, `${plot}.png`)).metadata();
      expect(meta).toMatchObject({ format: 'png', width: 640, height: 480 });
    }
    expect(readFileSync(path.join(out, 'pr-best.svg'), 'utf8')).toMatch(/<polyline /);

    // a second run scores nothing: every image comes from the cache, and the report is the same
    const again = await cli('eval', set, '--out', out);
    expect(again.code).toBe(0);
    expect(again.stderr).toContain('6 image(s) already scored in the cache');
    expect(again.stderr).not.toMatch(/scoring: /);
    expect(JSON.parse(readFileSync(path.join(out, 'report.json'), 'utf8')).mAP).toBe(report.mAP);
  });

  it('scores upstream’s open-set layout from the set’s LLM descriptions file', async () => {
    const descriptions = path.join(set, 'mini_llm_tag_descriptions.json');
    // upstream's shape: a list of {tag: [descriptions]}
    writeFileSync(descriptions, JSON.stringify([{ cat: ['a photo of a cat.', 'a small furry pet'] }, { dog: ['a photo of a dog.'] }, { car: ['a photo of a car.', 'a vehicle on a road'] }]));
    try {
      const out = path.join(tmp, 'out-open');
      const r = await cli('eval', set, '--open-set', '--out', out, '--no-progress');
      expect(r.code).toBe(0);
      const report = JSON.parse(readFileSync(path.join(out, 'report.json'), 'utf8'));
      expect(report.scorer.vocabulary).toBe(descriptions);
      // open-set tags use 0.5, the duplicate entry shares its tag's scores
      expect(report.tags.map((t: { threshold: number }) => t.threshold)).toEqual([0.5, 0.5, 0.5, 0.5]);
      const cache = cachedScores(path.join(out, 'scores.jsonl'));
      const closed = cachedScores(path.join(tmp, 'out-upstream', 'scores.jsonl'));
      expect(cache.get('img0')![3]).toBe(cache.get('img0')![0]);
      // scored from the descriptions, not the built-in rows
      expect(cache.get('img0')![0]).not.toBe(closed.get('img0')![0]);
    } finally {
      rmSync(descriptions);
    }
  });

  it('scores a CSV set open-set from a descriptions file and calibrates its thresholds', async () => {
    const csv = path.join(tmp, 'labels.csv');
    // a header, a quoted name with a comma, paths relative to the CSV's folder
    writeFileSync(csv, ['image,tags', 'mini/imgs/img0.jpg,"red, bright",square', 'mini/imgs/img1.jpg,square', 'mini/imgs/img2.jpg', 'mini/imgs/img3.jpg,"red, bright"'].join('\n'));
    const vocab = path.join(tmp, 'vocab.json');
    writeFileSync(vocab, JSON.stringify({ 'red, bright': ['a bright red photo.'], square: ['a photo of a square.', 'a square shape'], unused: ['x'] }));
    const out = path.join(tmp, 'out-csv');
    const r = await cli('eval', csv, '--vocab', vocab, '--out', out, '--calibrate', 'maxF1', '--min-positives', '2', '--no-progress');
    expect(r.code).toBe(0);
    const report = JSON.parse(readFileSync(path.join(out, 'report.json'), 'utf8'));
    expect(report.dataset).toMatchObject({ layout: 'csv', images: 4, tags: 2 });
    expect(report.tags.map((t: { tag: string; threshold: number; positives: number }) => [t.tag, t.threshold, t.positives])).toEqual([
      ['red, bright', 0.5, 2],
      ['square', 0.5, 2],
    ]);
    const calibration = JSON.parse(readFileSync(path.join(out, 'calibration.json'), 'utf8'));
    expect(calibration.target).toEqual({ kind: 'maxF1' });
    // every tag either changes to a threshold that does at least as well as before, or keeps it
    for (const c of calibration.changes) expect(c.expected.f1).toBeGreaterThanOrEqual(c.before.f1);
    expect(calibration.changes.length + calibration.kept.length).toBe(2);
    expect(readFileSync(path.join(out, 'calibration.md'), 'utf8')).toContain('| tag | old | new |');

    // a tag list of one: the other tag's labels are set aside, not refused
    const only = path.join(tmp, 'only-square.txt');
    writeFileSync(only, 'square\n');
    const one = await cli('eval', csv, '--vocab', vocab, '--taglist', only, '--out', path.join(tmp, 'out-one'));
    expect(one.code).toBe(0);
    expect(one.stderr).toContain('2 label(s) of tags outside --taglist set aside');
    expect(JSON.parse(readFileSync(path.join(tmp, 'out-one', 'report.json'), 'utf8')).tags.map((t: { tag: string }) => t.tag)).toEqual(['square']);
  });

  it('names missing images and unknown tags, and leaves missing images out on request', async () => {
    const dir = path.join(tmp, 'gaps');
    mkdirSync(path.join(dir, 'imgs'), { recursive: true });
    writeFileSync(path.join(dir, 'imgs', 'a.jpg'), readFileSync(path.join(set, 'imgs', 'img0.jpg')));
    writeFileSync(path.join(dir, 'imgs', 'broken.jpg'), 'not an image');
    writeFileSync(path.join(dir, 'gaps_ram_taglist.txt'), 'cat\ndog\n');
    writeFileSync(path.join(dir, 'gaps_ram_annots.txt'), 'a,cat\ngone,dog\nbroken,dog\n');
    const out = path.join(tmp, 'out-gaps');
    const missing = await cli('eval', dir, '--out', out, '--no-progress');
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/1 of 3 labelled images are not there \(first: gone\).*--skip-missing/);
    const skipped = await cli('eval', dir, '--out', out, '--no-progress', '--skip-missing');
    expect(skipped.code).toBe(0);
    const report = JSON.parse(readFileSync(path.join(out, 'report.json'), 'utf8'));
    expect(report.dataset.images).toBe(1);
    expect(report.dataset.skipped.map((s: { image: string; code: string }) => [s.image, s.code])).toEqual([
      ['gone', 'NOT_FOUND'],
      ['broken', 'BAD_IMAGE'],
    ]);

    writeFileSync(path.join(dir, 'gaps_ram_annots.txt'), 'a,cat,horse\n');
    const unknown = await cli('eval', dir, '--out', out, '--no-progress');
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/not in the tag list: "horse"/);
    writeFileSync(path.join(dir, 'gaps_ram_taglist.txt'), 'cat\nno such built-in tag\n');
    writeFileSync(path.join(dir, 'gaps_ram_annots.txt'), 'a,cat\n');
    const closed = await cli('eval', dir, '--out', out, '--no-progress');
    expect(closed.stderr).toMatch(/1 tag\(s\) of the set are not built-in tags .*"no such built-in tag".*--open-set/);
  });
});
