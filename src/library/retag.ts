/**
 * Re-tagging of stored images after a vocabulary changed: one step re-scores a batch of the
 * vocabulary's stored images whose results are older than its current revision, against the
 * tags changed since each result's revision only (`tags.revision`), from their stored encodings
 * (the decoder alone runs). Tags removed since are gone with their rows (foreign keys); tags
 * disabled or left without descriptions lose their rows. Run by the library worker.
 */
import { AppError, ErrorCode } from '../core/errors.ts';
import { buildLabelBank, holdSegments, tagEmbeddings, type InferenceEngine, type LabelBank } from '../inference/index.ts';
import type { VocabularySnapshot } from '../vocab/index.ts';
import { unpackEncoding } from './encoding.ts';
import type { ImageLibrary } from './library-service.ts';
import type { StaleResult, TagScoreRow } from './repository.ts';

export interface RetagDeps {
  readonly library: ImageLibrary;
  readonly engine: InferenceEngine;
  /** The vocabulary's current revision, compiled (NOT_FOUND when it is gone). */
  snapshot(tenantId: string, vocabularyId: string): Promise<VocabularySnapshot>;
  /** Ids of the vocabulary's tags changed after revision `since`. */
  changedTags(tenantId: string, vocabularyId: string, since: number): Promise<Set<string>>;
}

/** Encodings decoded per engine call: bounded memory and queue room, whatever the batch. */
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
    const remaining = stale.length > batch;
    const byRevision = new Map<number, StaleResult[]>();
    for (const r of stale.slice(0, batch)) byRevision.set(r.revision, [...(byRevision.get(r.revision) ?? []), r]);
    for (const [since, results] of byRevision) {
      signal.throwIfAborted();
      const changed = await this.deps.changedTags(tenantId, vocabularyId, since);
      const { bank, tagIds } = this.changedBank(snap, changed, since);
      for (let at = 0; at < results.length; at += ENGINE_CHUNK) {
        const part = results.slice(at, at + ENGINE_CHUNK);
        const scores: TagScoreRow[][] = part.map(() => []);
        if (bank) {
          const embeddings = part.map((r) => unpackEncoding(r.encoding, engine.info, r.imageId));
          const scored = await engine.scoreImages(embeddings, [bank], { signal, fairnessKey: tenantId });
          scored.forEach((s, k) => {
            const t = s.scores[0]!;
            const floor = part[k]!.scoreFloor;
            for (let i = 0; i < t.tagCount; i++) {
              const p = t.probabilities[i]!;
              if (!t.passed[i] && p < floor) continue;
              scores[k]!.push({ tagId: tagIds[i]!, score: p, logit: t.logits[i]!, passed: t.passed[i] === 1 });
            }
          });
        }
        await library.store.transaction(async (tx) => {
          for (const [k, r] of part.entries()) {
            await tx.writeResult(tenantId, { imageId: r.imageId, vocabularyId, revision: snap.revision, scoreFloor: r.scoreFloor, scores: scores[k]!, onlyTags: [...changed] });
          }
        });
      }
    }
    return { revision: snap.revision, remaining };
  }

  /** A bank of only the snapshot's tags among `changed` (their rows copied out as float32), or null when none is scored. */
  private changedBank(snap: VocabularySnapshot, changed: ReadonlySet<string>, since: number): { bank: LabelBank | null; tagIds: string[] } {
    const full = snap.bank;
    if (!full || changed.size === 0) return { bank: null, tagIds: [] };
    const rows: number[] = [];
    for (let i = 0; i < snap.tags.length; i++) if (changed.has(snap.tags.at(i)!.id)) rows.push(i);
    if (rows.length === 0) return { bank: null, tagIds: [] };
    // The rows are read while held: a vocabulary evicted meanwhile frees (and reuses) its memory.
    const release = holdSegments(full.segments);
    if (!release) throw new AppError(ErrorCode.OVERLOADED, 'the compiled vocabulary was evicted before its changed tags were read; trying again');
    try {
      const bank = buildLabelBank({
        key: `${full.key}:changed-since:${since}`,
        embedDim: full.embedDim,
        tags: rows.map((i) => ({ descriptions: tagEmbeddings(full, i), threshold: full.thresholds[i]! })),
      });
      return { bank, tagIds: rows.map((i) => snap.tags.at(i)!.id) };
    } finally {
      release();
    }
  }
}
