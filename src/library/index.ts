/**
 * The image library: stored images (encoder output, facts, thumbnail), their results per
 * vocabulary, listings ranked by a tag's score, deletion and ad-hoc text search. The face other
 * layers import; knows nothing of GraphQL or HTTP.
 */
export { bankOfTags, ImageLibrary, MAX_EXTERNAL_ID_LENGTH } from './library-service.ts';
export type { DeleteOutcome, ImageFilter, ImageHit, ImageQuotas, LibraryDeps, LibrarySettings, RescoreOutcome, RescoreTarget, ScoredForLibrary, StoredImageOutcome, StoreTicket } from './library-service.ts';
export { bytesPerValue, encoderChanged, packEncoding, unpackEncoding } from './encoding.ts';
export type { EncoderIdentity, EncodingDtype, StoredEncoding } from './encoding.ts';
export { LibraryRepository, LibraryStore } from './repository.ts';
export type { ImageRow, NewImage, RankedImageRow, RankFilter, ResultRow, ResultWrite, StaleResult, StoredTagScore, TagScoreRow } from './repository.ts';
export { makeThumbnail, thumbnailDataUrl } from './thumbnail.ts';
export type { Thumbnail, ThumbnailFormat } from './thumbnail.ts';
export { FeedbackService } from './feedback.ts';
export type { CalibrationOutcome, CalibrationRecord, FeedbackCounts, FeedbackDeps, FeedbackView, ProposedThreshold } from './feedback.ts';

// Background jobs: imports and re-tagging after vocabulary edits (src/library/jobs).
export { createLibraryJobs, LibraryJobService, LibraryJobWorker } from './jobs/index.ts';
export type { ImageImporter, ImageReader, ImportImageInput, LibraryJobItemRow, LibraryJobs, LibraryJobView, Retagger, RetagProgressView } from './jobs/index.ts';
export { ImageRetagger } from './retag.ts';
export { ImageSearch, MAX_SEARCH_RESULTS } from './search.ts';
export type { ImageSearchDeps, ImageSearchHit, ImageSearchResult } from './search.ts';
