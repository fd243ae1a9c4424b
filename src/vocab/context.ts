import type pg from 'pg';
import type { PrismaClient } from '../db/client.ts';
import type { DescriptionSource, DescriptionState } from '../generated/prisma/client.ts';
import type { BuiltinVocabulary, InferenceEngine } from '../inference/index.ts';
import type { Logger } from '../core/log.ts';
import type { EmbeddingCache } from './banks/embedding-cache.ts';
import type { DescriptionGenerator } from './generation/generators.ts';

/** Settings every vocabulary service reads. */
export interface VocabSettings {
  /** Descriptions per tag made by the template generator and asked of the LLM (default 51). */
  readonly descriptionsPerTag: number;
  /** Threshold of tags that are not built-in and have no override (RAM++ open-set: 0.5). */
  readonly defaultThreshold: number;
  /** Items per addTags / removeTags call. */
  readonly maxTagsPerRequest: number;
  /** Stored descriptions per tag. */
  readonly maxDescriptionsPerTag: number;
}

/** What the services share; built once by `createVocabularyServices`. */
export interface VocabContext {
  readonly prisma: PrismaClient;
  readonly pool: pg.Pool;
  readonly engine: InferenceEngine;
  readonly log: Logger;
  readonly settings: VocabSettings;
  readonly embeddings: EmbeddingCache;
  /** The LLM generator when one is configured. */
  readonly llm: DescriptionGenerator | undefined;
  readonly template: DescriptionGenerator;
  /** Wakes this process's description worker (new work was queued). */
  nudgeWorker(): void;
}

/** A tag as the API shows it. */
export interface TagView {
  readonly id: string;
  readonly vocabularyId: string;
  readonly name: string;
  /** Normalised comparison key (case-folded name). */
  readonly key: string;
  /** The threshold in force: the override, else the built-in tag's own, else the default. */
  readonly threshold: number;
  readonly thresholdOverride: number | null;
  readonly enabled: boolean;
  readonly aliases: readonly string[];
  readonly names: readonly { language: string; name: string }[];
  readonly status: DescriptionState;
  readonly statusReason: string | null;
  readonly builtin: boolean;
  readonly builtinIndex: number | null;
  /** Scored with the model's built-in description embeddings. */
  readonly usesBuiltinDescriptions: boolean;
  /** Vocabulary revision of this tag's last change. */
  readonly revision: number;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

export interface DescriptionView {
  /** Row id; built-in descriptions have synthetic ids `builtin:<tagId>:<n>`. */
  readonly id: string;
  readonly tagId: string;
  /** Null for BUILTIN descriptions, which exist only as embeddings. */
  readonly text: string | null;
  readonly source: DescriptionSource;
  readonly position: number;
  readonly generatorModel: string | null;
  readonly generatorPrompt: string | null;
  readonly createdAt: Date;
}

/** Per-item outcome of a bulk operation. */
export interface ItemResult {
  readonly id: string;
  readonly ok: boolean;
  readonly error?: { code: string; message: string };
}

export interface TagRow {
  id: string;
  vocabularyId: string;
  name: string;
  key: string;
  threshold: number | null;
  enabled: boolean;
  builtinIndex: number | null;
  useBuiltinDescriptions: boolean;
  descriptionState: DescriptionState;
  descriptionError: string | null;
  revision: number;
  createdAt: Date;
  updatedAt: Date;
  aliases: { name: string }[];
  names: { language: string; name: string }[];
}

/** Prisma `include` that gives a TagRow. */
export const TAG_INCLUDE = {
  aliases: { select: { name: true }, orderBy: { key: 'asc' } },
  names: { select: { language: true, name: true }, orderBy: { language: 'asc' } },
} as const;

export function thresholdOf(
  row: Pick<TagRow, 'threshold' | 'builtinIndex'>,
  builtin: BuiltinVocabulary | undefined,
  defaultThreshold: number,
): number {
  if (row.threshold !== null) return row.threshold;
  if (row.builtinIndex !== null && builtin) return builtin.tags[row.builtinIndex]?.threshold ?? defaultThreshold;
  return defaultThreshold;
}

/** Built-in thresholds are needed only when a row is a built-in tag without an override. */
export async function builtinFor(ctx: VocabContext, rows: readonly Pick<TagRow, 'threshold' | 'builtinIndex'>[]) {
  return rows.some((r) => r.builtinIndex !== null && r.threshold === null) ? ctx.engine.builtinVocabulary() : undefined;
}

export function toTagView(row: TagRow, builtin: BuiltinVocabulary | undefined, defaultThreshold: number): TagView {
  return {
    id: row.id,
    vocabularyId: row.vocabularyId,
    name: row.name,
    key: row.key,
    threshold: thresholdOf(row, builtin, defaultThreshold),
    thresholdOverride: row.threshold,
    enabled: row.enabled,
    aliases: row.aliases.map((a) => a.name),
    names: row.names.map((n) => ({ language: n.language, name: n.name })),
    status: row.descriptionState,
    statusReason: row.descriptionError,
    builtin: row.builtinIndex !== null,
    builtinIndex: row.builtinIndex,
    usesBuiltinDescriptions: row.builtinIndex !== null && row.useBuiltinDescriptions,
    revision: row.revision,
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
  };
}

export async function toTagViews(ctx: VocabContext, rows: readonly TagRow[]): Promise<TagView[]> {
  const builtin = await builtinFor(ctx, rows);
  return rows.map((r) => toTagView(r, builtin, ctx.settings.defaultThreshold));
}
