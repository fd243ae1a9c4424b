/**
 * Ad-hoc open-set search over a tenant's stored encodings: a concept typed in words ("red
 * panda") is described on the fly (CLIP's templates, or the LLM when one is configured), its
 * descriptions embedded (through the embedding cache), made into a one-tag label bank and
 * decoded over the stored encodings batch by batch. Nothing is added to any vocabulary.
 */
import { performance } from 'node:perf_hooks';
import { ErrorCode, badInput, isAppError } from '../core/errors.ts';
import { buildLabelBank, type ImageEmbeddings, type InferenceEngine } from '../inference/index.ts';
import { checkTagName, nameKey, type DescriptionGenerator, type VocabularySnapshot } from '../vocab/index.ts';
import { unpackEncoding } from './encoding.ts';
import type { ImageLibrary } from './library-service.ts';
import type { ImageRow } from './repository.ts';
import { sha256Hex } from '../core/hash.ts';

export interface ImageSearchDeps {
  readonly library: ImageLibrary;
  readonly engine: InferenceEngine;
  /** Where descriptions come from (the vocabularies' generator: LLM when configured, else templates). */
  readonly generator: DescriptionGenerator;
  /** Texts → L2-normalised vectors (the vocabularies' embedding cache). */
  embed(texts: readonly string[], options?: { signal?: AbortSignal }): Promise<{ vectors: Float32Array[] }>;
  /** A vocabulary's current revision (NOT_FOUND across tenants): its tags' thresholds. */
  snapshot(tenantId: string, vocabularyId: string): Promise<VocabularySnapshot>;
  readonly descriptionsPerTag: number;
  /** Threshold of a concept that is no tag of the vocabulary (the open-set default). */
  readonly defaultThreshold: number;
}

export interface ImageSearchHit {
  readonly image: ImageRow;
  readonly score: number;
  readonly logit: number;
  readonly passed: boolean;
}

export interface ImageSearchResult {
  /** The text as searched (normalised). */
  readonly text: string;
  readonly threshold: number;
  /** `template` or `llm:<model>`. */
  readonly describedBy: string;
  readonly descriptions: number;
  /** Stored images decoded. */
  readonly scanned: number;
  /** Stored images left out because another image encoder made their encoding (ENCODER_CHANGED). */
  readonly skipped: number;
  /** Best first (ties by image id). */
  readonly hits: readonly ImageSearchHit[];
  readonly tookMs: number;
}

export const MAX_SEARCH_RESULTS = 100;

export class ImageSearch {
  constructor(private readonly deps: ImageSearchDeps) {}

  async search(tenantId: string, q: { vocabularyId?: string | null; text: string; first?: number | null }, signal?: AbortSignal): Promise<ImageSearchResult> {
    const started = performance.now();
    const checked = checkTagName(q.text, 'text');
    if (!checked.ok) throw badInput(checked.problem.message, { field: 'text' });
    const first = q.first ?? 10;
    if (!Number.isInteger(first) || first < 1 || first > MAX_SEARCH_RESULTS) throw badInput(`first must be between 1 and ${MAX_SEARCH_RESULTS}`, { field: 'first' });
    const { library, engine, generator } = this.deps;

    // the threshold of the vocabulary's tag of that name, else the open-set default
    let threshold = this.deps.defaultThreshold;
    if (q.vocabularyId != null) {
      const snap = await this.deps.snapshot(tenantId, q.vocabularyId);
      for (const tag of snap.tags) {
        if (nameKey(tag.name) === checked.key) {
          threshold = tag.threshold;
          break;
        }
      }
    }

    const generated = await generator.generate(checked.name, this.deps.descriptionsPerTag, signal ? { signal } : {});
    const texts = generated.descriptions.map((d) => d.text);
    if (!texts.length) throw badInput('no description could be made of this text', { field: 'text' });
    const { vectors } = await this.deps.embed(texts, signal ? { signal } : {});
    const bank = buildLabelBank({
      key: `search:${sha256Hex(texts.join('\n'))}`,
      embedDim: engine.info.embedDim,
      tags: [{ descriptions: vectors, threshold }],
    });

    // bounded memory: one batch of encodings at a time, and the best `first` kept
    const batch = Math.max(1, Math.min(library.settings.searchBatch, Math.floor(engine.stats().maxQueue / 2)));
    const best: { id: string; score: number; logit: number; passed: boolean }[] = [];
    let scanned = 0;
    let skipped = 0;
    let after: string | null = null;
    for (;;) {
      signal?.throwIfAborted();
      const page = await library.store.run((db) => db.encodingPage(tenantId, { after, limit: batch, vocabularyId: q.vocabularyId ?? undefined }));
      if (!page.length) break;
      after = page.at(-1)!.id;
      const usable: { id: string; embeddings: ImageEmbeddings }[] = [];
      for (const row of page) {
        try {
          usable.push({ id: row.id, embeddings: unpackEncoding(row.encoding, engine.info, row.id) });
        } catch (e) {
          // another pack's encoding is left out and counted; anything else is a real failure
          if (!isAppError(e) || e.code !== ErrorCode.ENCODER_CHANGED) throw e;
          skipped++;
        }
      }
      if (usable.length) {
        const admission = engine.admit(usable.length);
        try {
          const scored = await engine.scoreImages(
            usable.map((u) => u.embeddings),
            [bank],
            { fairnessKey: tenantId, admission, ...(signal ? { signal } : {}) },
          );
          scored.forEach((s, i) => {
            const sc = s.scores[0]!;
            keepBest(best, { id: usable[i]!.id, score: sc.probabilities[0]!, logit: sc.logits[0]!, passed: sc.passed[0] === 1 }, first);
          });
        } finally {
          admission.release();
        }
        scanned += usable.length;
      }
      if (page.length < batch) break;
    }
    const rows = new Map((await library.imagesByIds(tenantId, best.map((b) => b.id))).flatMap((r) => (r ? [[r.id, r] as const] : [])));
    return {
      text: checked.name,
      threshold,
      describedBy: generator.name,
      descriptions: texts.length,
      scanned,
      skipped,
      // an image deleted meanwhile drops out
      hits: best.flatMap((b) => (rows.has(b.id) ? [{ image: rows.get(b.id)!, score: b.score, logit: b.logit, passed: b.passed }] : [])),
      tookMs: performance.now() - started,
    };
  }
}

/** Inserts a hit into `best` (sorted best first, ties by id) and keeps at most `k`. */
function keepBest<T extends { id: string; score: number }>(best: T[], hit: T, k: number): void {
  const before = (a: T, b: T) => a.score > b.score || (a.score === b.score && a.id < b.id);
  if (best.length === k && !before(hit, best[k - 1]!)) return;
  let i = best.length;
  while (i > 0 && before(hit, best[i - 1]!)) i--;
  best.splice(i, 0, hit);
  if (best.length > k) best.pop();
}
