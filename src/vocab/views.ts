/** What the vocabulary services answer with: tags and descriptions as the API shows them. */
import type { DescriptionSource, DescriptionState } from '../generated/prisma/client.ts';
import type { BuiltinVocabulary, InferenceEngine } from '../inference/index.ts';
import type { TagRow } from './repository/tags.ts';

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

export function thresholdOf(
  row: { threshold: number | null; builtinIndex: number | null },
  builtin: BuiltinVocabulary | undefined,
  defaultThreshold: number,
): number {
  if (row.threshold !== null) return row.threshold;
  if (row.builtinIndex !== null && builtin) return builtin.tags[row.builtinIndex]?.threshold ?? defaultThreshold;
  return defaultThreshold;
}

function toTagView(row: TagRow, builtin: BuiltinVocabulary | undefined, defaultThreshold: number): TagView {
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

/** Views of rows; the pack's built-in vocabulary is loaded only when a built-in tag has no override. */
export async function toTagViews(engine: InferenceEngine, defaultThreshold: number, rows: readonly TagRow[]): Promise<TagView[]> {
  const builtin = rows.some((r) => r.builtinIndex !== null && r.threshold === null) ? await engine.builtinVocabulary() : undefined;
  return rows.map((r) => toTagView(r, builtin, defaultThreshold));
}
