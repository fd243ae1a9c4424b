/**
 * Checks src/eval's metrics against upstream RAM++'s own `get_mAP` / `get_PR` (numpy), run from a
 * recognize-anything checkout, on a seeded random matrix (float32 scores, a tag without
 * positives) and the same predictions; then shows what upstream's `get_PR` does with a
 * duplicate tag-list entry.
 *
 *   npx tsx bench/eval-upstream-parity.ts <recognize-anything checkout> [python]
 *
 * Needs Python with numpy (Debian's /usr/bin/python3 has it). Nothing of upstream is copied:
 * its module is imported from the checkout.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildTargets, meanAveragePrecision, precisionRecall, predictions } from '../src/eval/metrics.ts';

const checkout = process.argv[2];
const python = process.argv[3] ?? '/usr/bin/python3';
if (!checkout) throw new Error('usage: npx tsx bench/eval-upstream-parity.ts <recognize-anything checkout> [python]');

let seed = 3;
const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
const n = 2000;
const taglist = ['a', 'b', 'c', 'd', 'e'];
const k = taglist.length;
const scores = new Float32Array(n * k);
const labels: string[][] = [];
for (let i = 0; i < n; i++) {
  const l: string[] = [];
  for (let c = 0; c < k; c++) {
    const positive = c < 4 && rand() < 0.15 * (c + 1); // 'e' has no positives
    if (positive) l.push(taglist[c]!);
    scores[i * k + c] = Math.fround(Math.min(1, Math.max(0, (positive ? 0.6 : 0.35) + (rand() - 0.5) * 0.5)));
  }
  labels.push(l);
}
const thresholds = [0.5, 0.45, 0.55, 0.5, 0.5];
const predicted = predictions(scores, thresholds, taglist, n);
const ours = meanAveragePrecision(scores, buildTargets(taglist, labels), n, k);
const pr = precisionRecall(predicted, buildTargets(taglist, labels), n, k);

const dir = mkdtempSync(path.join(os.tmpdir(), 'omnitag-parity-'));
try {
  const rows = (f: (i: number) => string) => `${Array.from({ length: n }, (_, i) => f(i)).join('\n')}\n`;
  // scores as float32 values printed exactly enough to read back bit for bit
  writeFileSync(path.join(dir, 'scores.txt'), rows((i) => Array.from(scores.subarray(i * k, (i + 1) * k), (x) => x.toPrecision(9)).join(' ')));
  writeFileSync(path.join(dir, 'gt.txt'), rows((i) => [`img${i}`, ...labels[i]!].join(',')));
  writeFileSync(path.join(dir, 'pred.txt'), rows((i) => [`img${i}`, ...taglist.filter((_, c) => predicted[i * k + c])].join(',')));
  writeFileSync(path.join(dir, 'dup_gt.txt'), 'x,a\ny,b\n');
  writeFileSync(path.join(dir, 'dup_pred.txt'), 'x,a\ny,a\n');
  const script = `
import importlib.util, json, numpy as np
# the metrics file alone (it needs numpy only; the ram package would pull in torch and CLIP)
spec = importlib.util.spec_from_file_location('upstream_metrics', ${JSON.stringify(path.resolve(checkout, 'ram', 'utils', 'metrics.py'))})
m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)
get_mAP, get_PR = m.get_mAP, m.get_PR
d = ${JSON.stringify(dir)}
tl = ${JSON.stringify(taglist)}
mAP, APs = get_mAP(np.loadtxt(d + '/scores.txt', dtype=np.float32), d + '/gt.txt', tl)
CP, CR, _, _ = get_PR(d + '/pred.txt', d + '/gt.txt', tl)
try:
    get_PR(d + '/dup_pred.txt', d + '/dup_gt.txt', ['a', 'b', 'a'])
    dup = 'ok'
except Exception as e:
    dup = type(e).__name__ + ': ' + str(e)
print(json.dumps({'mAP': float(mAP), 'ap': [float(x) for x in APs], 'CP': float(CP), 'CR': float(CR), 'dup': dup}))
`;
  const up = JSON.parse(execFileSync(python, ['-c', script], { encoding: 'utf8' })) as { mAP: number; ap: number[]; CP: number; CR: number; dup: string };
  const apDiff = Math.max(...up.ap.map((x, c) => Math.abs(x - ours.ap[c]!)));
  console.log(`${n} images × ${k} tags (one without positives)`);
  console.log(`mAP: upstream ${up.mAP}, ours ${ours.mAP}, |Δ| ${Math.abs(up.mAP - ours.mAP).toExponential(2)}; max per-tag |Δ AP| ${apDiff.toExponential(2)}`);
  console.log(`CP: |Δ| ${Math.abs(up.CP - pr.meanPrecision).toExponential(2)}, CR: |Δ| ${Math.abs(up.CR - pr.meanRecall).toExponential(2)}`);
  console.log(`upstream get_PR with the tag list [a, b, a]: ${up.dup}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
