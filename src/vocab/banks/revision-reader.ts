import { notFound } from '../../core/errors.ts';
import type { SnapshotDescriptionRow, SnapshotNameRow, SnapshotReader, SnapshotTagRow } from '../repository/snapshots.ts';

/** Everything a compile needs of one revision, read in one snapshot. */
export interface RevisionRead {
  revision: number;
  /** Enabled tags in bank order. */
  order: string[];
  /** The enabled tags to (re)build: all of them, or only those changed since the previous compile. */
  rows: SnapshotTagRow[];
  names: SnapshotNameRow[];
  descriptions: SnapshotDescriptionRow[];
}

/** What the reader needs of the previous compile of the same vocabulary. */
export interface PreviousCompile {
  readonly revision: number;
  readonly order: readonly string[];
  /** Whether that compile holds a piece for the tag. */
  has(tagId: string): boolean;
}

/**
 * Reads one revision in one REPEATABLE READ transaction: its number, its enabled tags in bank
 * order, and everything about the tags changed since `prev`. With a previous compile only the
 * changed tags are read (index `tags(tenant_id, vocabulary_id, revision)`), plus a count that
 * tells whether any tag was deleted since (then the whole tag list is read again).
 */
export function readRevision(reader: SnapshotReader, tenantId: string, vocabularyId: string, prev: PreviousCompile | undefined): Promise<RevisionRead> {
  return reader.read(async (s) => {
    const revision = await s.revision(tenantId, vocabularyId);
    if (revision === undefined) throw notFound('vocabulary');
    if (!prev) {
      // a whole compile: every enabled tag in bank order, their names and descriptions by vocabulary
      const rows = await s.enabledTags(tenantId, vocabularyId);
      const all = { enabledOf: vocabularyId };
      const names = rows.length > 0 ? await s.names(tenantId, all) : [];
      const descriptions = rows.length > 0 ? await s.descriptions(tenantId, all) : [];
      return { revision, order: rows.map((r) => r.id), rows, names, descriptions };
    }
    const rows = await s.changedSince(tenantId, vocabularyId, prev.revision);
    const count = await s.enabledCount(tenantId, vocabularyId);
    const changed = new Set(rows.map((r) => r.id));
    const kept = prev.order.filter((id) => !changed.has(id));
    const added = rows.filter((r) => r.enabled && !prev.has(r.id)).map((r) => r.id);
    const stillIn = new Set(rows.filter((r) => r.enabled).map((r) => r.id));
    const candidate = [...prev.order.filter((id) => !changed.has(id) || stillIn.has(id)), ...added];
    // every tag of `kept` is unchanged since prev, so still enabled unless it was deleted
    let order: string[] | undefined = candidate.length === count && kept.length + stillIn.size === count ? candidate : undefined;
    if (!order) {
      order = await s.enabledOrder(tenantId, vocabularyId);
      // prev's pieces stay valid for tags it has that did not change
      const missing = order.filter((id) => !prev.has(id) && !changed.has(id));
      if (missing.length) rows.push(...(await s.tags(tenantId, missing)));
    }
    const enabledRows = rows.filter((r) => r.enabled);
    const ids = { ids: enabledRows.map((r) => r.id) };
    const names = ids.ids.length > 0 ? await s.names(tenantId, ids) : [];
    const descriptions = ids.ids.length > 0 ? await s.descriptions(tenantId, ids) : [];
    return { revision, order, rows: enabledRows, names, descriptions };
  });
}
