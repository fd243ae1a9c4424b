import type { Config } from '../config.ts';
import type { Database } from '../db/client.ts';
import type { InferenceEngine } from '../inference/index.ts';
import type { TaggingService } from '../tagging/tagging-service.ts';
import type { ApiKeyService } from '../tenancy/api-key-service.ts';
import type { VocabularyServices } from '../vocab/index.ts';
import type { Authenticator } from '../tenancy/authenticator.ts';
import type { TenantService } from '../tenancy/tenants.ts';

/** Readiness of the service's dependencies, for /readyz and the `health` query. */
export interface HealthService {
  check(): Promise<{ database: boolean }>;
}

/** Everything resolvers may call; built once by the composition root (src/app.ts). */
export interface Services {
  readonly config: Config;
  readonly db: Database;
  readonly databaseKind: 'embedded' | 'postgresql';
  readonly version: string;
  readonly auth: Authenticator;
  readonly health: HealthService;
  readonly tenants: TenantService;
  readonly apiKeys: ApiKeyService;
  readonly engine: InferenceEngine;
  readonly vocab: VocabularyServices;
  readonly tagging: TaggingService;
}
