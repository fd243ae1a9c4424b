import type { InferenceEngine } from '../inference/index.ts';
import type { FeedbackService, ImageLibrary, ImageSearch } from '../library/index.ts';
import type { LimitsService } from '../limits/index.ts';
import type { TaggingService } from '../tagging/tagging-service.ts';
import type { ImageInputValue } from '../tagging/image-input.ts';
import type { UsageReport } from '../tagging/usage-report.ts';
import type { ApiKeyService } from '../tenancy/api-key-service.ts';
import type { VocabularyServices } from '../vocab/index.ts';
import type { LibraryJobService } from '../library/index.ts';
import type { Authenticator } from '../tenancy/authenticator.ts';
import type { TenantService } from '../tenancy/tenants.ts';

/** Readiness of the service's dependencies, for /readyz and the `health` query. */
export interface HealthService {
  check(): Promise<{ database: boolean }>;
}

/**
 * What the API layer may call; built once by the composition root (src/app.ts). No database
 * handle and no configuration: the few settings resolvers need come as fields of their own.
 */
export interface Services {
  readonly databaseKind: 'embedded' | 'postgresql';
  readonly version: string;
  /** Largest `first` a connection field accepts (config.limits.maxPageSize). */
  readonly maxPageSize: number;
  readonly auth: Authenticator;
  readonly health: HealthService;
  readonly tenants: TenantService;
  readonly apiKeys: ApiKeyService;
  readonly engine: InferenceEngine;
  readonly vocab: VocabularyServices;
  readonly tagging: TaggingService;
  /** Imports and re-tagging of stored images (background jobs). */
  readonly libraryJobs: LibraryJobService<ImageInputValue>;
  /** Stored images: reads, listings, deletion (storing goes through `tagging`). */
  readonly library: ImageLibrary;
  readonly imageSearch: ImageSearch;
  readonly limits: LimitsService;
  readonly usage: UsageReport;
  /** Feedback on stored images and the threshold calibration it feeds. */
  readonly feedback: FeedbackService;
}
