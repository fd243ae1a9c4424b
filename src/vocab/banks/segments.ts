/**
 * A vocabulary's own segments: the rows of the tags it does not share with the pack (its own
 * tags, and built-in tags with descriptions of their own), in segments of at most `segmentTags`
 * tags. A tag keeps its segment from one revision to the next, so an edit rebuilds only the
 * segments whose tags changed, and a new tag joins the last segment (or starts one).
 * Segments are immutable: a rebuilt segment is a new one, and older snapshots keep theirs.
 */
import { SegmentBuilder, segmentBytes, segmentRowEmbeddings, type BankSegment, type SegmentArena, type SegmentPrecision } from '../../inference/index.ts';

export interface OwnSegment {
  readonly segment: BankSegment;
  /** Tag ids, row by row. */
  readonly tagIds: readonly string[];
}

/** Where a tag's own rows come from in this compile. */
export type RowSource =
  /** embedded now (new tag or changed descriptions): `count` rows of E floats */
  | { readonly fresh: readonly Float32Array[]; readonly count: number }
  /** unchanged since the previous compile: that compile's segment row */
  | { readonly segment: BankSegment; readonly row: number; readonly count: number };

export interface LayoutSettings {
  segmentTags: number;
  precision: SegmentPrecision;
  embedDim: number;
  /** Prefix of new segments' keys (the vocabulary id). */
  keyPrefix: string;
}

export interface Layout {
  segments: OwnSegment[];
  /** Each own tag's place: index into `segments` and row. */
  places: Map<string, { segment: number; row: number }>;
  /** Segments built by this layout (the others are the previous compile's, shared). */
  built: number;
}

let serial = 0;

/**
 * Lays out the own rows of `ids` (bank order). `changed` holds the tags whose rows differ from
 * the previous compile (their sources are fresh); every other id's source is its old row.
 * `memoryFor(bytes)`, told what the layout's segments will hold, names the arena to build them
 * in, or none: then they get memory of their own and none of the previous segments is reused.
 * Segments built in an arena are held once each, for the caller to hand over or release.
 */
export function layoutSegments(
  previous: readonly OwnSegment[],
  ids: readonly string[],
  sources: ReadonlyMap<string, RowSource>,
  changed: ReadonlySet<string>,
  settings: LayoutSettings,
  memoryFor: (bytes: number) => SegmentArena | undefined = () => undefined,
): Layout {
  const wanted = new Set(ids);
  const placed = new Set<string>();
  const plans: { tagIds: string[]; reuse: OwnSegment | undefined }[] = [];
  for (const old of previous) {
    const tagIds = old.tagIds.filter((id) => wanted.has(id));
    if (tagIds.length === 0) continue;
    tagIds.forEach((id) => placed.add(id));
    const clean = tagIds.length === old.tagIds.length && old.segment.precision === settings.precision && !tagIds.some((id) => changed.has(id));
    plans.push({ tagIds, reuse: clean ? old : undefined });
  }
  const newcomers = ids.filter((id) => !placed.has(id));
  let last = plans.at(-1);
  for (const id of newcomers) {
    if (!last || last.tagIds.length >= settings.segmentTags) {
      last = { tagIds: [], reuse: undefined };
      plans.push(last);
    }
    last.tagIds.push(id);
    last.reuse = undefined;
  }

  const bytesPer = settings.precision === 'float16' ? 2 : 4;
  const depthOf = (plan: (typeof plans)[number]) => plan.reuse?.segment.maxDescriptions ?? plan.tagIds.reduce((m, id) => Math.max(m, sources.get(id)!.count), 1);
  const planned = plans.reduce((n, plan) => n + plan.tagIds.length * (depthOf(plan) * (settings.embedDim * bytesPer + 1) + 8), 0);
  const arena = memoryFor(planned);
  if (!arena) plans.forEach((plan) => (plan.reuse = undefined));

  const places = new Map<string, { segment: number; row: number }>();
  const fresh: BankSegment[] = [];
  try {
    const segments = plans.map((plan, index) => {
      plan.tagIds.forEach((id, row) => places.set(id, { segment: index, row }));
      if (plan.reuse) return plan.reuse;
      const segment = buildOwnSegment(plan.tagIds, depthOf(plan), sources, settings, arena);
      fresh.push(segment);
      return { segment, tagIds: plan.tagIds };
    });
    return { segments, places, built: fresh.length };
  } catch (e) {
    fresh.forEach((s) => s.lifetime?.release());
    throw e;
  }
}

function buildOwnSegment(tagIds: readonly string[], D: number, sources: ReadonlyMap<string, RowSource>, settings: LayoutSettings, arena: SegmentArena | undefined): BankSegment {
  const builder = new SegmentBuilder(`${settings.keyPrefix}:s${++serial}`, tagIds.length, D, settings.embedDim, settings.precision, arena);
  try {
    for (const [row, id] of tagIds.entries()) {
      const source = sources.get(id)!;
      // float16 rows widen exactly, and narrowing them again gives the same bits
      builder.setTag(row, 'fresh' in source ? source.fresh : segmentRowEmbeddings(source.segment, source.row));
    }
    return builder.build();
  } catch (e) {
    builder.abandon();
    throw e;
  }
}

export const ownSegmentBytes = (segments: readonly OwnSegment[]) => segments.reduce((n, s) => n + segmentBytes(s.segment) + 8 * s.tagIds.length, 0);
