import type { DescriptionSource, TagDescription } from '../../generated/prisma/client.ts';
import { chunks } from '../../core/chunks.ts';
import { sha256Hex } from '../../core/hash.ts';
import type { Db } from './transactions.ts';

export type { TagDescription };

/** A description to store; its `text_hash` (the embedding cache key) is computed here. */
export interface NewDescription {
  tenantId: string;
  tagId: string;
  text: string;
  source: Exclude<DescriptionSource, 'BUILTIN'>;
  position: number;
  generatorModel?: string | null;
  generatorPrompt?: string | null;
  /** Default: now. */
  createdAt?: Date;
}

/** Rows per bulk insert statement (unnest of column arrays: one round trip per chunk). */
const INSERT_CHUNK = 10_000;

/** Listing order of a tag's descriptions. */
const ORDER = [{ position: 'asc' }, { createdAt: 'asc' }, { id: 'asc' }] as const;

/** The `tag_descriptions` table; every query is scoped by the tenant. */
export class DescriptionRepository {
  constructor(private readonly db: Db) {}

  /**
   * Bulk insert, one statement per chunk (unnest of column arrays): thousands of rows per call
   * (hundreds of tags × 51) cost one round trip each, not one parameter list per row.
   */
  async insertMany(rows: readonly NewDescription[]): Promise<void> {
    for (const part of chunks(rows, INSERT_CHUNK)) {
      await this.db.$executeRaw`
        INSERT INTO tag_descriptions (id, tenant_id, tag_id, text, text_hash, source, position, generator_model, generator_prompt, created_at)
        SELECT gen_random_uuid(), u.tenant_id, u.tag_id, u.text, u.text_hash, u.source::"DescriptionSource", u.position, u.model, u.prompt, now()
          FROM unnest(${part.map((r) => r.tenantId)}::uuid[], ${part.map((r) => r.tagId)}::uuid[], ${part.map((r) => r.text)}::text[],
                      ${part.map((r) => sha256Hex(r.text))}::text[], ${part.map((r) => r.source)}::text[], ${part.map((r) => r.position)}::int[],
                      ${part.map((r) => r.generatorModel ?? null)}::text[], ${part.map((r) => r.generatorPrompt ?? null)}::text[])
            AS u(tenant_id, tag_id, text, text_hash, source, position, model, prompt)`;
    }
  }

  /** A few rows through the client (they keep a given `createdAt`). */
  async insert(rows: readonly NewDescription[]): Promise<void> {
    await this.db.tagDescription.createMany({ data: rows.map((r) => ({ ...r, textHash: sha256Hex(r.text) })) });
  }

  /** Stored descriptions of the tenant's tags among `tagIds`, in listing order. */
  ofTags(tenantId: string, tagIds: readonly string[]): Promise<TagDescription[]> {
    return this.db.tagDescription.findMany({ where: { tenantId, tagId: { in: [...tagIds] } }, orderBy: [...ORDER] });
  }

  ofTag(tenantId: string, tagId: string): Promise<TagDescription[]> {
    return this.db.tagDescription.findMany({ where: { tenantId, tagId }, orderBy: { position: 'asc' } });
  }

  /** A tag's TEMPLATE rows, in order: what a rename writes again. */
  templates(tenantId: string, tagId: string): Promise<{ position: number; createdAt: Date }[]> {
    return this.db.tagDescription.findMany({
      where: { tagId, tenantId, source: 'TEMPLATE' },
      orderBy: [{ position: 'asc' }, { id: 'asc' }],
      select: { position: true, createdAt: true },
    });
  }

  /** Deletes a tag's rows, all of them or those of `sources`. */
  async deleteOfTag(tenantId: string, tagId: string, sources?: readonly DescriptionSource[]): Promise<void> {
    await this.db.tagDescription.deleteMany({ where: { tagId, tenantId, ...(sources ? { source: { in: [...sources] } } : {}) } });
  }
}
