import type { Config } from '../config.ts';
import type { InferenceEngine } from '../inference/index.ts';
import type { Logger } from '../core/log.ts';
import type { DescriptionGenerator } from './generation/generators.ts';
import type { VocabStore } from './repository/store.ts';

/** Settings every vocabulary service reads: the configuration's vocabulary values and the request limit. */
export type VocabSettings = Omit<Config['vocab'], 'worker'> & Pick<Config['limits'], 'maxTagsPerRequest'>;

/**
 * The tenant's quotas (QUOTA_EXCEEDED); built by the composition root over the limits service,
 * absent where nothing is limited.
 */
export interface VocabQuotas {
  /**
   * The tenant's stored quotas, read before an edit's transaction opens (the embedded database
   * has one connection: no read may wait for it while the transaction holds it).
   */
  storedQuotas(tenantId: string): Promise<StoredQuotaCheck>;
  /** `n` tags about to be sent to the LLM. */
  takeLlmGenerations(tenantId: string, n: number): Promise<void>;
}

/**
 * Checks run inside an edit's transaction before it stores more. `stored` counts what the tenant
 * holds, under a lock that serialises such edits; it is called only when the tenant has that quota.
 */
export interface StoredQuotaCheck {
  admitVocabularies(adding: number, stored: () => Promise<number>): Promise<void>;
  admitTags(adding: number, stored: () => Promise<number>): Promise<void>;
}

/** What the services share; built once by `createVocabularyServices`. */
export interface VocabContext {
  readonly store: VocabStore;
  readonly engine: InferenceEngine;
  readonly log: Logger;
  readonly settings: VocabSettings;
  /** The LLM generator when one is configured. */
  readonly llm: DescriptionGenerator | undefined;
  readonly template: DescriptionGenerator;
  readonly quotas: VocabQuotas | undefined;
  /** Wakes this process's description worker (new work was queued). */
  nudgeWorker(): void;
}
