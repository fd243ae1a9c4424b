/** What a compiled vocabulary revision looks like to its readers (tagging, "why this tag"). */
import type { DescriptionSource, DescriptionState } from '../../generated/prisma/client.ts';
import type { LabelBank } from '../../inference/index.ts';

export interface SnapshotDescription {
  readonly source: DescriptionSource;
  /** Null for BUILTIN descriptions (embeddings only). */
  readonly text: string | null;
}

/** One scored tag of a compiled vocabulary, in bank order (built-in tags as packed read the pack's values). */
export interface SnapshotTag {
  readonly id: string;
  readonly name: string;
  /** Names in other languages by language tag ("zh" for the built-in Chinese names). */
  readonly names: Readonly<Record<string, string>>;
  /** The threshold in force. */
  readonly threshold: number;
  readonly builtin: boolean;
  readonly status: DescriptionState;
  readonly statusReason: string | null;
  /** Where its descriptions came from: BUILTIN, LLM, MANUAL (only hand-written) or TEMPLATE. */
  readonly descriptionSource: DescriptionSource;
  /** True while its own descriptions are not ready (PENDING, GENERATING, FAILED): what it has stands in. */
  readonly usedFallback: boolean;
  /** The descriptions behind the bank's rows for this tag, in row order (for "why this tag"). */
  readonly descriptions: readonly SnapshotDescription[];
}

/** A compiled vocabulary's tags, tag i being bank row i; entries are made when read, so read the ones you need. */
export interface SnapshotTagList extends Iterable<SnapshotTag> {
  readonly length: number;
  /** Tag `index` (negative: from the end), undefined out of range, as `Array.prototype.at`. */
  at(index: number): SnapshotTag | undefined;
}

/** One revision of a vocabulary, compiled for the engine. Every field is of that one revision. */
export interface VocabularySnapshot {
  readonly tenantId: string;
  readonly vocabularyId: string;
  readonly revision: number;
  /** Null when no enabled tag has a description (nothing to score). */
  readonly bank: LabelBank | null;
  /** `tags.at(i)` is tag i of the bank (its rows: `bank.segmentOf[i]`, `bank.rowOf[i]`). */
  readonly tags: SnapshotTagList;
  /** Enabled tags left out because they have no description. */
  readonly skipped: readonly { id: string; name: string }[];
}
