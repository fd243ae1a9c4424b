/**
 * Re-tagging of stored images after a vocabulary changed: one step re-scores a batch of the
 * vocabulary's stored images whose results are older than its current revision, against the
 * tags changed since each result's revision only (`tags.revision`), from their stored encodings
 * (`ImageLibrary.rescore`: the decoder alone runs, over a bank of just those tags). Tags removed
 * since are gone with their rows (foreign keys); tags disabled or left without descriptions lose
 * their rows. Run by the library worker.
 */
import type { InferenceEngine } from '../inference/index.ts';
import type { VocabularySnapshot } from '../vocab/index.ts';
import { bankOfTags, type ImageLibrary, type RescoreTarget } from './library-service.ts';

export interface RetagDeps {
  readonly library: ImageLibrary;
  readonly engine: InferenceEngine;
  /** The vocabulary's current revision, compiled (NOT_FOUND when it is gone). */
  snapshot(tenantId: string, vocabularyId: string): Promise<VocabularySnapshot>;
  /** Ids of the vocabulary's tags changed after revision `since`. */
  changedTags(tenantId: string, vocabularyId: string, since: number): Promise<Set<string>>;
}

/** Stored images decoded per engine call: bounded memory and queue room, whatever the batch. */
const ENGINE_CHUNK = 16;

export class ImageRetagger {
  constructor(private readonly deps: RetagDeps) {}

  /**
   * Re-scores up to `batch` stale images of the vocabulary; `remaining` says whether more are
   * behind its revision. Idempotent: an image written already is no longer stale, and a result
   * is never replaced by an older revision's.
   */
  async retagStep(tenantId: string, vocabularyId: string, batch: number, signal: AbortSignal): Promise<{ revision: number; remaining: boolean }> {
    const { library, engine } = this.deps;
    const snap = await this.deps.snapshot(tenantId, vocabularyId);
    const stale = await library.store.run((db) => db.staleResults(tenantId, vocabularyId, snap.revision, engine.info.imageEncoderId, batch + 1));
    const byRevision = new Map<number, string[]>();
    for (const r of stale.slice(0, batch)) {
      const ids = byRevision.get(r.revision);
      if (ids) ids.push(r.imageId);
      else byRevision.set(r.revision, [r.imageId]);
    }
    for (const [since, imageIds] of byRevision) {
      signal.throwIfAborted();
      const changed = await this.deps.changedTags(tenantId, vocabularyId, since);
      const target = this.changedTarget(snap, changed, since);
      for (let at = 0; at < imageIds.length; at += ENGINE_CHUNK) {
        const part = imageIds.slice(at, at + ENGINE_CHUNK);
        if (target) {
          await library.rescore(tenantId, part, target, { signal, fairnessKey: tenantId });
        } else {
          // nothing of the revision to score (only removed, disabled or description-less tags
          // changed): their rows go and the results move to the revision
          await library.store.transaction(async (tx) => {
            for (const imageId of part) {
              await tx.writeResult(tenantId, { imageId, vocabularyId, revision: snap.revision, scoreFloor: library.settings.scoreFloor, scores: [], onlyTags: [...changed] });
            }
          });
        }
      }
    }
    return { revision: snap.revision, remaining: stale.length > batch };
  }

  /** What the changed tags are scored with: a bank of only the snapshot's tags among `changed`; undefined when none is scored. */
  private changedTarget(snap: VocabularySnapshot, changed: ReadonlySet<string>, since: number): RescoreTarget | undefined {
    const full = snap.bank;
    if (!full || changed.size === 0) return undefined;
    const rows: number[] = [];
    for (let i = 0; i < snap.tags.length; i++) if (changed.has(snap.tags.at(i)!.id)) rows.push(i);
    if (rows.length === 0) return undefined;
    const tagIds = rows.map((i) => snap.tags.at(i)!.id);
    return {
      vocabularyId: snap.vocabularyId,
      revision: snap.revision,
      bank: bankOfTags(full, rows, `${full.key}:changed-since:${since}`),
      tagIdAt: (i) => tagIds[i]!,
      // the changed tags that are not scored (disabled, no description) lose their rows too
      onlyTags: [...changed],
    };
  }
}
