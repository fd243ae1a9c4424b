import { describe, expect, it, vi } from 'vitest';
import { AppError } from '../../src/core/errors.ts';
import { createLogger } from '../../src/core/log.ts';
import type { Admission, InferenceEngine } from '../../src/inference/index.ts';
import { evictedBank } from '../../src/inference/scoring/label-bank.ts';
import { TaggingService, type VocabularySnapshots } from '../../src/tagging/tagging-service.ts';
import type { UsageRecorder } from '../../src/tagging/usage-recorder.ts';
import type { VocabularySnapshot } from '../../src/vocab/index.ts';

const TENANT = '00000000-0000-4000-8000-000000000001';
const VOCAB = '00000000-0000-4000-8000-000000000002';
const image = { base64: Buffer.from('not decoded by these fakes').toString('base64') };

/** A service over fakes: an engine whose admission and scoring the test decides, and a vocabulary reader that counts its calls. */
function service(engine: { admit: InferenceEngine['admit']; scoreImages?: InferenceEngine['scoreImages'] }, read: () => Promise<VocabularySnapshot>) {
  const vocabularies: VocabularySnapshots = { forVocabulary: vi.fn(read) };
  const scoreImages = vi.fn(engine.scoreImages ?? (() => Promise.reject(new Error('not reached'))));
  const tagging = new TaggingService({
    engine: { ...engine, scoreImages } as unknown as InferenceEngine,
    vocabularies,
    usage: { record: vi.fn() } as unknown as UsageRecorder,
    urlFetcher: undefined,
    limits: { maxImageBytes: 1 << 20, maxImagesPerRequest: 8 },
    log: createLogger('silent'),
  });
  return { tagging, vocabularies, scoreImages };
}

const snapshot = { tenantId: TENANT, vocabularyId: VOCAB, revision: 3, bank: { tagCount: 1 }, tags: [], skipped: [] } as unknown as VocabularySnapshot;

describe('tagging admission', () => {
  it('answers OVERLOADED before it reads the vocabulary or any image when the engine cannot take the request', async () => {
    const overloaded = new AppError('OVERLOADED', 'the inference queue is full; retry later', { details: { retryAfterMs: 120 } });
    const admit = vi.fn(() => {
      throw overloaded;
    });
    const { tagging, vocabularies, scoreImages } = service({ admit }, () => Promise.resolve(snapshot));
    await expect(tagging.tagImage(TENANT, VOCAB, image)).rejects.toBe(overloaded);
    await expect(tagging.tagImages(TENANT, VOCAB, [image, image, image])).rejects.toBe(overloaded);
    expect(admit.mock.calls).toEqual([[1], [3]]);
    expect(vocabularies.forVocabulary).not.toHaveBeenCalled();
    expect(scoreImages).not.toHaveBeenCalled();
  });

  it('scores under its admission and gives it back when the request ends, however it ends', async () => {
    const admissions: (Admission & { release: ReturnType<typeof vi.fn> })[] = [];
    const admit = (units: number) => {
      const a = { units, release: vi.fn() };
      admissions.push(a);
      return a;
    };
    const badImage = new AppError('BAD_IMAGE', 'not an image');
    const unavailable = new AppError('DATABASE_UNAVAILABLE', 'the database is unavailable; try again shortly');

    const scoring = service({ admit, scoreImages: () => Promise.reject(badImage) }, () => Promise.resolve(snapshot));
    await expect(scoring.tagging.tagImage(TENANT, VOCAB, image)).rejects.toBe(badImage);
    expect(scoring.scoreImages.mock.calls[0]![2]).toMatchObject({ admission: admissions[0], fairnessKey: TENANT });
    const many = await scoring.tagging.tagImages(TENANT, VOCAB, [image, image]);
    expect(many.map((o) => o.error?.code)).toEqual(['BAD_IMAGE', 'BAD_IMAGE']);

    const down = service({ admit }, () => Promise.reject(unavailable));
    await expect(down.tagging.tagImage(TENANT, VOCAB, image)).rejects.toBe(unavailable);
    await expect(down.tagging.tagImages(TENANT, VOCAB, [image])).rejects.toBe(unavailable);

    expect(admissions.map((a) => [a.units, a.release.mock.calls.length])).toEqual([
      [1, 1],
      [2, 1],
      [1, 1],
      [1, 1],
    ]);
  });
});

describe('a vocabulary evicted between fetching and scoring', () => {
  const admit = () => ({ release: vi.fn() }) as unknown as Admission;
  const scored = { source: { format: 'png', width: 1, height: 1, bytes: 1 }, embeddings: null, scores: [{ tagCount: 0, logits: new Float32Array(0), thresholds: new Float32Array(0), passed: new Uint8Array(0) }], timings: { preprocessMs: 0, inferenceMs: 1 } };
  const later = { ...snapshot, revision: 4, bank: { tagCount: 1, key: 'fresh' } } as unknown as VocabularySnapshot;

  it('is fetched again and scored, the result naming the revision it was scored at', async () => {
    const reads = [snapshot, later];
    const banks: unknown[] = [];
    const { tagging, vocabularies } = service(
      {
        admit,
        scoreImages: ((_images: unknown, b: readonly unknown[]) => {
          banks.push(b[0]);
          return banks.length === 1 ? Promise.reject(evictedBank()) : Promise.resolve([scored]);
        }) as unknown as InferenceEngine['scoreImages'],
      },
      () => Promise.resolve(reads.shift()!),
    );
    const result = await tagging.tagImage(TENANT, VOCAB, image);
    expect(result.revision).toBe(4);
    expect(banks).toEqual([snapshot.bank, later.bank]);
    expect(vocabularies.forVocabulary).toHaveBeenCalledTimes(2);
  });

  it('gives up with OVERLOADED after three evictions in a row', async () => {
    const { tagging, scoreImages } = service({ admit, scoreImages: () => Promise.reject(evictedBank()) }, () => Promise.resolve(snapshot));
    const error = await tagging.tagImage(TENANT, VOCAB, image).catch((e: unknown) => e as AppError);
    expect(error).toBeInstanceOf(AppError);
    expect((error as AppError).code).toBe('OVERLOADED');
    expect(scoreImages).toHaveBeenCalledTimes(3);
  });
});
