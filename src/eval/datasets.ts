/**
 * Labelled image sets, in upstream RAM++'s layout or as a simple CSV / JSON of image → tags.
 *
 * Upstream layout (`datasets/<name>/`):
 *   <name>_ram_taglist.txt   one tag per line; a name may repeat (see metrics.ts)
 *   <name>_ram_annots.txt    `image,tag,tag,…` per line (`image` under imgs/, `.jpg` added when
 *                            the file is not there as named, as upstream does)
 *   imgs/
 *   <name>_llm_tag_descriptions.json   optional: [{tag: [descriptions]}] for open-set scoring
 * Upstream's HICO and ImageNet-multi files drop `_ram` (`<name>_taglist.txt`, `<name>_annots.txt`)
 * and give each image's labels as 0-based tag-list positions separated by spaces
 * (`image,245` / `image,970 795`); both are read.
 *
 * CSV: `image,tag,tag,…` per row (RFC 4180 quoting for names with commas; a first row whose
 * first cell is `image` or `file` is a header). JSON: `{"image": ["tag", …]}` or
 * `[{"image": "…", "tags": ["…"]}]`. Paths are relative to the file's folder; the tag list is
 * every tag in order of first appearance unless one is given.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { badInput } from '../core/errors.ts';

export interface LabelledImage {
  /** As the labels name it (upstream: relative to imgs/, without `.jpg`). */
  id: string;
  /** The file found for it, or null when there is none. */
  file: string | null;
  tags: string[];
}

export interface LabelledSet {
  name: string;
  layout: 'upstream' | 'csv' | 'json';
  taglist: string[];
  images: LabelledImage[];
  /** Open-set descriptions shipped with the set (upstream's LLM descriptions file), by tag. */
  descriptionsFile: string | null;
}

/** Reads a set from a folder in upstream's layout, or a .csv / .json file. */
export async function readLabelledSet(location: string, options: { taglist?: string } = {}): Promise<LabelledSet> {
  const info = await stat(location).catch(() => null);
  if (!info) throw badInput(`${location}: no such file or folder`);
  const taglist = options.taglist ? await readTaglist(options.taglist) : null;
  if (info.isDirectory()) return readUpstream(location, taglist);
  const ext = path.extname(location).toLowerCase();
  const text = await readFile(location, 'utf8');
  const rows = ext === '.json' ? parseJsonLabels(text, location) : ext === '.csv' || ext === '.txt' ? parseCsvLabels(text, location) : null;
  if (!rows) throw badInput(`${location}: a labelled set is a folder in upstream's layout, a .csv or a .json file`);
  const base = path.dirname(location);
  const images = await Promise.all(rows.map(async ([id, tags]) => ({ id, file: await existing(path.resolve(base, id)), tags })));
  return {
    name: path.basename(location, path.extname(location)),
    layout: ext === '.json' ? 'json' : 'csv',
    taglist: taglist ?? firstAppearance(rows.map((r) => r[1])),
    images,
    descriptionsFile: null,
  };
}

async function readUpstream(dir: string, given: string[] | null): Promise<LabelledSet> {
  const entries = await readdir(dir);
  const lists = entries.filter((f) => f.endsWith('_taglist.txt'));
  const named = lists.find((f) => f.endsWith('_ram_taglist.txt')) ?? (lists.length === 1 ? lists[0] : undefined);
  if (!named && !given) throw badInput(`${dir}: no <name>_ram_taglist.txt (or one <name>_taglist.txt) in upstream's layout`);
  const name = named ? named.replace(/(_ram)?_taglist\.txt$/, '') : path.basename(dir);
  const annots = [`${name}_ram_annots.txt`, `${name}_annots.txt`].find((f) => entries.includes(f));
  if (!annots) throw badInput(`${dir}: no ${name}_ram_annots.txt or ${name}_annots.txt next to the tag list`);
  const taglist = given ?? (await readTaglist(path.join(dir, named!)));
  const lines = (await readFile(path.join(dir, annots), 'utf8')).split(/\r?\n/);
  while (lines.length > 0 && lines.at(-1)!.trim() === '') lines.pop();
  const rows = lines.map((line) => {
    const cells = line.split(',').map((c) => c.trim());
    return [cells[0]!, cells.slice(1).filter(Boolean)] as [string, string[]];
  });
  const known = new Set(taglist);
  // upstream's HICO / ImageNet-multi files label by position: `image,3 17`
  const byIndex = rows.some(([, tags]) => tags.some((t) => !known.has(t))) && rows.every(([, tags]) => tags.length <= 1 && (tags.length === 0 || /^\d+(\s+\d+)*$/.test(tags[0]!)));
  if (byIndex) {
    for (const row of rows) {
      row[1] = row[1].flatMap((cell) =>
        cell.split(/\s+/).map((p) => {
          const i = Number(p);
          if (i >= taglist.length) throw badInput(`${annots}: image ${row[0]} has label ${i}, past the ${taglist.length} tags of the tag list`);
          return taglist[i]!;
        }),
      );
    }
  }
  const imgs = path.join(dir, 'imgs');
  const images = await Promise.all(
    rows.map(async ([id, tags]) => {
      const file = (await existing(path.join(imgs, id))) ?? (await existing(path.join(imgs, `${id}.jpg`)));
      return { id, file, tags };
    }),
  );
  const descriptions = path.join(dir, `${name}_llm_tag_descriptions.json`);
  return { name, layout: 'upstream', taglist, images, descriptionsFile: (await existing(descriptions)) ? descriptions : null };
}

export async function readTaglist(file: string): Promise<string[]> {
  const text = await readFile(file, 'utf8').catch(() => {
    throw badInput(`${file}: cannot read the tag list`);
  });
  const tags = text.split(/\r?\n/).map((l) => l.trim());
  while (tags.length > 0 && tags.at(-1) === '') tags.pop();
  if (tags.length === 0 || tags.some((t) => t === '')) throw badInput(`${file}: a tag list has one tag per line, none empty`);
  return tags;
}

/** RFC 4180 rows: quoted cells may hold commas, quotes (doubled) and line breaks. */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else cell += ch;
    } else if (ch === '"' && cell === '') quoted = true;
    else if (ch === ',') {
      row.push(cell);
      cell = '';
    } else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && text[i + 1] === '\n') i++;
      row.push(cell);
      rows.push(row);
      row = [];
      cell = '';
    } else cell += ch;
  }
  if (cell !== '' || row.length > 0) {
    row.push(cell);
    rows.push(row);
  }
  return rows;
}

function parseCsvLabels(text: string, file: string): Array<[string, string[]]> {
  const rows = parseCsv(text.replace(/^\uFEFF/, '')).filter((r) => r.some((c) => c.trim() !== ''));
  if (rows.length > 0 && /^(image|file)$/i.test(rows[0]![0]!.trim())) rows.shift();
  if (rows.length === 0) throw badInput(`${file}: no labelled images`);
  return rows.map((r, i) => {
    const id = r[0]!.trim();
    if (!id) throw badInput(`${file}: row ${i + 1} names no image`);
    return [id, r.slice(1).map((c) => c.trim()).filter(Boolean)];
  });
}

function parseJsonLabels(text: string, file: string): Array<[string, string[]]> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw badInput(`${file}: not valid JSON (${(e as Error).message})`);
  }
  const rows: Array<[string, unknown]> = Array.isArray(raw)
    ? raw.map((item, i) => {
        const o = item as { image?: unknown; file?: unknown; tags?: unknown } | null;
        const id = o?.image ?? o?.file;
        if (typeof id !== 'string' || !id) throw badInput(`${file}: entry ${i} has no "image"`);
        return [id, o!.tags];
      })
    : raw && typeof raw === 'object'
      ? Object.entries(raw)
      : [];
  if (rows.length === 0) throw badInput(`${file}: expected {"image": ["tag", …]} or [{"image": "…", "tags": [ … ]}] with at least one image`);
  return rows.map(([id, tags]) => {
    if (!Array.isArray(tags) || tags.some((t) => typeof t !== 'string')) throw badInput(`${file}: the tags of "${id}" must be a list of names`);
    return [id, (tags as string[]).map((t) => t.trim()).filter(Boolean)];
  });
}

function firstAppearance(lists: readonly string[][]): string[] {
  const seen = new Set<string>();
  for (const l of lists) for (const t of l) seen.add(t);
  if (seen.size === 0) throw badInput('no image has any tag: give a tag list (--taglist) to measure against');
  return [...seen];
}

async function existing(file: string): Promise<string | null> {
  const s = await stat(file).catch(() => null);
  return s?.isFile() ? file : null;
}
