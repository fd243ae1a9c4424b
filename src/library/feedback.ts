/**
 * Feedback on stored images and the threshold calibration it feeds: a person says whether a
 * tag is present on a stored image (one answer per image and tag, the latest kept); a
 * vocabulary's calibration scores each answered image from its stored encoding against the
 * vocabulary as it is now (decoder cost only) and learns per-tag thresholds from those scores
 * and answers (src/eval/calibration.ts), proposing them (dry run) or applying them as threshold
 * overrides in one revision.
 */
import { badInput, ErrorCode, isAppError, notFound } from '../core/errors.ts';
import { isUuid } from '../core/ids.ts';
import type { Logger } from '../core/log.ts';
import { translateDbError, type PrismaClient } from '../db/client.ts';
import { calibrateThresholds, checkCalibration, type CalibrationTarget, type KeptThreshold } from '../eval/calibration.ts';
import { isEvictedBankError, type ImageEmbeddings, type InferenceEngine } from '../inference/index.ts';
import type { VocabularyServices, VocabularySnapshot } from '../vocab/index.ts';
import { unpackEncoding } from './encoding.ts';
import { LibraryStore } from './repository.ts';

export interface FeedbackDeps {
  readonly prisma: PrismaClient;
  readonly engine: InferenceEngine;
  readonly vocab: Pick<VocabularyServices, 'labelBanks' | 'tags'>;
  readonly log: Logger;
}

export interface FeedbackView {
  imageId: string;
  tagId: string;
  vocabularyId: string;
  present: boolean;
  updatedAt: Date;
}

export interface FeedbackCounts {
  present: number;
  absent: number;
  /** Distinct tags with at least one answer. */
  tags: number;
}

export interface CalibrationRecord {
  target: CalibrationTarget;
  minPositives: number;
  feedback: number;
  changed: number;
  revision: number;
  createdAt: Date;
}

export interface ProposedThreshold {
  tagId: string;
  name: string;
  old: number;
  new: number;
  positives: number;
  negatives: number;
  before: { precision: number; recall: number };
  expected: { precision: number; recall: number };
}

export interface CalibrationOutcome {
  dryRun: boolean;
  target: CalibrationTarget;
  minPositives: number;
  /** Answers used: on enabled tags, of images this engine can score. */
  feedback: number;
  /** Answered images left out: encoded by another model pack (re-tag them to count them again). */
  skippedImages: number;
  changes: ProposedThreshold[];
  kept: Array<{ tagId: string; name: string; threshold: number; positives: number; reason: KeptThreshold['reason'] }>;
  /** The vocabulary's revision after the call (a new one only when changes were applied). */
  revision: number;
}

/** Images scored per engine call during a calibration. */
const SCORE_CHUNK = 16;

export class FeedbackService {
  private readonly library: LibraryStore;

  constructor(private readonly deps: FeedbackDeps) {
    this.library = new LibraryStore(deps.prisma);
  }

  /**
   * Records (or replaces) whether `tagId` is present on the stored image `imageId`. Another
   * tenant's image or tag, a missing and a malformed id are all NOT_FOUND.
   */
  async submit(tenantId: string, imageId: string, tagId: string, present: boolean): Promise<FeedbackView> {
    if (!isUuid(imageId)) throw notFound('image');
    if (!isUuid(tagId)) throw notFound('tag');
    if (typeof present !== 'boolean') throw badInput('present must be true or false', { field: 'present' });
    const { prisma } = this.deps;
    try {
      const [image, tag] = await Promise.all([
        prisma.libraryImage.findFirst({ where: { tenantId, id: imageId }, select: { id: true } }),
        prisma.tag.findFirst({ where: { tenantId, id: tagId }, select: { vocabularyId: true } }),
      ]);
      if (!image) throw notFound('image');
      if (!tag) throw notFound('tag');
      const row = await prisma.imageFeedback.upsert({
        where: { imageId_tagId: { imageId, tagId } },
        create: { tenantId, imageId, tagId, vocabularyId: tag.vocabularyId, present },
        update: { present },
        select: { imageId: true, tagId: true, vocabularyId: true, present: true, updatedAt: true },
      });
      return row;
    } catch (e) {
      if (isAppError(e)) throw e;
      // the image or the tag was deleted between the checks and the write
      if ((e as { code?: string }).code === 'P2003') throw notFound('image or tag');
      return translateDbError(e);
    }
  }

  async counts(tenantId: string, vocabularyId: string): Promise<FeedbackCounts> {
    const { prisma } = this.deps;
    const [byAnswer, tags] = await Promise.all([
      prisma.imageFeedback.groupBy({ by: ['present'], where: { tenantId, vocabularyId }, _count: { _all: true } }),
      prisma.imageFeedback.groupBy({ by: ['tagId'], where: { tenantId, vocabularyId } }),
    ]).catch(translateDbError);
    const count = (p: boolean) => byAnswer.find((r) => r.present === p)?._count._all ?? 0;
    return { present: count(true), absent: count(false), tags: tags.length };
  }

  async lastCalibration(tenantId: string, vocabularyId: string): Promise<CalibrationRecord | null> {
    const row = await this.deps.prisma.thresholdCalibration
      .findFirst({ where: { tenantId, vocabularyId }, orderBy: [{ createdAt: 'desc' }, { id: 'desc' }] })
      .catch(translateDbError);
    if (!row) return null;
    const target: CalibrationTarget = row.target === 'precision' ? { kind: 'precision', precision: row.precision ?? 0 } : { kind: 'maxF1' };
    return { target, minPositives: row.minPositives, feedback: row.feedback, changed: row.changed, revision: row.revision, createdAt: row.createdAt };
  }

  /**
   * Per-tag thresholds from the vocabulary's feedback: scores of the answered images now (from
   * their stored encodings), the best F1 or the lowest threshold reaching the target precision,
   * tags with fewer than `minPositives` present answers kept. Applied in one revision unless
   * `dryRun`.
   */
  async calibrate(tenantId: string, vocabularyId: string, target: CalibrationTarget, options: { dryRun: boolean; minPositives: number }): Promise<CalibrationOutcome> {
    if (!isUuid(vocabularyId)) throw notFound('vocabulary');
    checkCalibration(target, options.minPositives);
    const { prisma, vocab } = this.deps;
    // NOT_FOUND for another tenant's vocabulary comes from here, before any feedback is read
    let snap = await vocab.labelBanks.forVocabulary(tenantId, vocabularyId);
    const answers = await prisma.imageFeedback
      .findMany({ where: { tenantId, vocabularyId }, select: { imageId: true, tagId: true, present: true }, orderBy: [{ imageId: 'asc' }, { tagId: 'asc' }] })
      .catch(translateDbError);

    // per image its answers; each image's scores are read as soon as its chunk is scored, so
    // memory holds answers, not every image's probabilities over the whole vocabulary
    const byImage = new Map<string, { tagId: string; present: boolean }[]>();
    for (const a of answers) {
      const list = byImage.get(a.imageId);
      if (list) list.push(a);
      else byImage.set(a.imageId, [a]);
    }
    let perTag = new Map<number, { scores: number[]; targets: number[] }>();
    let used = 0;
    let skipped = 0;
    for (let attempt = 1; ; attempt++) {
      const indexOf = new Map<string, number>();
      for (let i = 0; i < snap.tags.length; i++) indexOf.set(snap.tags.at(i)!.id, i);
      perTag = new Map();
      used = 0;
      try {
        skipped = await this.scoreImages(tenantId, snap, [...byImage.keys()], (imageId, probabilities) => {
          for (const a of byImage.get(imageId)!) {
            const index = indexOf.get(a.tagId);
            if (index === undefined) continue; // a disabled tag
            let entry = perTag.get(index);
            if (!entry) perTag.set(index, (entry = { scores: [], targets: [] }));
            entry.scores.push(probabilities[index]!);
            entry.targets.push(a.present ? 1 : 0);
            used++;
          }
        });
        break;
      } catch (e) {
        // the vocabulary's compile was evicted before it was scored: fetch it again
        if (!isEvictedBankError(e) || attempt >= 3) throw e;
        snap = await vocab.labelBanks.forVocabulary(tenantId, vocabularyId);
      }
    }

    const changes: ProposedThreshold[] = [];
    const kept: CalibrationOutcome['kept'] = [];
    for (const [index, { scores, targets }] of [...perTag].sort((x, y) => x[0] - y[0])) {
      const tag = snap.tags.at(index)!;
      const result = calibrateThresholds({ taglist: [tag.name], scores, targets, images: scores.length, thresholds: [tag.threshold], target, minPositives: options.minPositives });
      const positives = targets.reduce((s, t) => s + t, 0);
      for (const c of result.changes) {
        changes.push({ tagId: tag.id, name: tag.name, old: c.old, new: c.new, positives, negatives: scores.length - positives, before: { precision: c.before.precision, recall: c.before.recall }, expected: { precision: c.expected.precision, recall: c.expected.recall } });
      }
      for (const k of result.kept) kept.push({ tagId: tag.id, name: tag.name, threshold: k.threshold, positives: k.positives, reason: k.reason });
    }

    let revision = snap.revision;
    if (!options.dryRun && changes.length > 0) {
      const applied = await vocab.tags.setThresholds(tenantId, vocabularyId, changes.map((c) => ({ tagId: c.tagId, threshold: c.new })));
      revision = applied.revision;
      await prisma.thresholdCalibration
        .create({
          data: {
            tenantId,
            vocabularyId,
            target: target.kind,
            precision: target.kind === 'precision' ? target.precision : null,
            minPositives: options.minPositives,
            feedback: used,
            changed: applied.results.filter((r) => r.ok).length,
            revision,
          },
        })
        .catch(translateDbError);
    }
    return { dryRun: options.dryRun, target, minPositives: options.minPositives, feedback: used, skippedImages: skipped, changes, kept, revision };
  }

  /**
   * Scores each image from its stored encoding against the snapshot and hands its probabilities
   * (over the snapshot's tags) to `take`; returns how many images another encoder made.
   */
  private async scoreImages(tenantId: string, snap: VocabularySnapshot, imageIds: string[], take: (imageId: string, probabilities: Float32Array) => void): Promise<number> {
    let skipped = 0;
    if (!snap.bank || imageIds.length === 0) return skipped;
    const { engine } = this.deps;
    for (let start = 0; start < imageIds.length; start += SCORE_CHUNK) {
      const ids = imageIds.slice(start, start + SCORE_CHUNK);
      const encodings = await this.library.run((db) => db.encodings(tenantId, ids));
      const ready: { id: string; embeddings: ImageEmbeddings }[] = [];
      for (const id of ids) {
        const enc = encodings.get(id);
        if (!enc) continue; // deleted meanwhile; its feedback went with it
        try {
          ready.push({ id, embeddings: unpackEncoding(enc, engine.info, id) });
        } catch (e) {
          if (!isAppError(e) || e.code !== ErrorCode.ENCODER_CHANGED) throw e;
          skipped++;
        }
      }
      if (ready.length === 0) continue;
      const results = await engine.scoreImages(
        ready.map((r) => r.embeddings),
        [snap.bank],
        { fairnessKey: tenantId },
      );
      results.forEach((r, j) => take(ready[j]!.id, r.scores[0]!.probabilities));
    }
    return skipped;
  }
}
