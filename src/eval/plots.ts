/**
 * Plots of an evaluation as SVG (plain text, no plotting library), and as PNG through sharp,
 * which renders SVG: precision–recall curves of the best and the worst tags, and a histogram
 * of the per-tag AP.
 */
import sharp from 'sharp';
import type { CurvePoint } from './metrics.ts';

const W = 640;
const H = 480;
const M = { left: 60, right: 190, top: 40, bottom: 50 };
const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const f = (x: number) => x.toFixed(1);

export interface TagCurve {
  tag: string;
  ap: number;
  points: readonly CurvePoint[];
}

function frame(title: string, xLabel: string, yLabel: string, xTicks: string[], yTicks: string[]): string[] {
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const out = [
    `<rect x="0" y="0" width="${W}" height="${H}" fill="#ffffff"/>`,
    `<text x="${W / 2}" y="24" text-anchor="middle" font-family="sans-serif" font-size="16">${esc(title)}</text>`,
    `<rect x="${M.left}" y="${M.top}" width="${pw}" height="${ph}" fill="none" stroke="#333333"/>`,
    `<text x="${M.left + pw / 2}" y="${H - 12}" text-anchor="middle" font-family="sans-serif" font-size="13">${esc(xLabel)}</text>`,
    `<text x="16" y="${M.top + ph / 2}" text-anchor="middle" font-family="sans-serif" font-size="13" transform="rotate(-90 16 ${M.top + ph / 2})">${esc(yLabel)}</text>`,
  ];
  xTicks.forEach((t, i) => {
    const x = M.left + (pw * i) / (xTicks.length - 1);
    out.push(`<line x1="${f(x)}" y1="${M.top + ph}" x2="${f(x)}" y2="${M.top + ph + 5}" stroke="#333333"/>`);
    out.push(`<text x="${f(x)}" y="${M.top + ph + 18}" text-anchor="middle" font-family="sans-serif" font-size="11">${esc(t)}</text>`);
  });
  yTicks.forEach((t, i) => {
    const y = M.top + ph - (ph * i) / (yTicks.length - 1);
    out.push(`<line x1="${M.left - 5}" y1="${f(y)}" x2="${M.left}" y2="${f(y)}" stroke="#333333"/>`);
    out.push(`<line x1="${M.left}" y1="${f(y)}" x2="${M.left + pw}" y2="${f(y)}" stroke="#eeeeee"/>`);
    out.push(`<text x="${M.left - 8}" y="${f(y + 4)}" text-anchor="end" font-family="sans-serif" font-size="11">${esc(t)}</text>`);
  });
  return out;
}

const svg = (body: string[]) => `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}">\n${body.join('\n')}\n</svg>\n`;

/** Precision (y) against recall (x), one line per tag, with a legend of the tags and their AP. */
export function precisionRecallSvg(title: string, curves: readonly TagCurve[]): string {
  const ticks = ['0', '0.2', '0.4', '0.6', '0.8', '1'];
  const body = frame(title, 'recall', 'precision', ticks, ticks);
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  curves.forEach((c, i) => {
    const colour = PALETTE[i % PALETTE.length]!;
    // a step curve: precision holds until the next score adds recall
    const pts: string[] = [];
    let prevR = 0;
    for (const p of c.points) {
      pts.push(`${f(M.left + prevR * pw)},${f(M.top + ph - p.precision * ph)}`, `${f(M.left + p.recall * pw)},${f(M.top + ph - p.precision * ph)}`);
      prevR = p.recall;
    }
    if (pts.length > 0) body.push(`<polyline fill="none" stroke="${colour}" stroke-width="2" points="${pts.join(' ')}"/>`);
    const ly = M.top + 10 + i * 18;
    body.push(`<line x1="${W - M.right + 10}" y1="${ly}" x2="${W - M.right + 28}" y2="${ly}" stroke="${colour}" stroke-width="3"/>`);
    const name = c.tag.length > 18 ? `${c.tag.slice(0, 17)}…` : c.tag;
    body.push(`<text x="${W - M.right + 32}" y="${ly + 4}" font-family="sans-serif" font-size="11">${esc(name)} (${(c.ap * 100).toFixed(1)})</text>`);
  });
  return svg(body);
}

/** Number of tags per AP bin (10 bins of 0.1 by default). */
export function apHistogramSvg(title: string, aps: readonly number[], bins = 10): string {
  const counts = new Array<number>(bins).fill(0);
  for (const ap of aps) counts[Math.min(bins - 1, Math.max(0, Math.floor(ap * bins)))]!++;
  // a top divisible by the four tick intervals, so that every tick is a whole number of tags
  const top = Math.max(4, Math.ceil(Math.max(...counts) / 4) * 4);
  const yTicks = Array.from({ length: 5 }, (_, i) => String((top * i) / 4));
  const xTicks = Array.from({ length: bins + 1 }, (_, i) => (i / bins).toFixed(1));
  const body = frame(title, 'AP', 'tags', xTicks, yTicks);
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  counts.forEach((count, i) => {
    const h = (count / top) * ph;
    const x = M.left + (pw * i) / bins;
    body.push(`<rect x="${f(x + 1)}" y="${f(M.top + ph - h)}" width="${f(pw / bins - 2)}" height="${f(h)}" fill="#1f77b4"><title>${count}</title></rect>`);
  });
  body.push(`<text x="${W - M.right + 10}" y="${M.top + 14}" font-family="sans-serif" font-size="11">${aps.length} tags</text>`);
  return svg(body);
}

export const svgToPng = (svgText: string): Promise<Buffer> => sharp(Buffer.from(svgText)).png().toBuffer();
