import DataLoader from 'dataloader';
import type { Services } from './services.ts';
import type { DescriptionView, TagView, Vocabulary } from '../vocab/index.ts';

/**
 * Per-request batching of the lookups nested fields make (one query for the descriptions of
 * a whole page of tags, not one per tag). Made lazily for the calling tenant, so a loader can
 * only ever see that tenant's rows.
 */
export interface Loaders {
  readonly vocabulary: DataLoader<string, Vocabulary | null>;
  readonly tag: DataLoader<string, TagView | null>;
  readonly descriptions: DataLoader<string, DescriptionView[]>;
}

export function createLoaders(services: Services, tenantId: string): Loaders {
  const { vocab } = services;
  return {
    vocabulary: new DataLoader(async (ids) => {
      const found = await vocab.vocabularies.getMany(tenantId, ids);
      return ids.map((id) => found.get(id) ?? null);
    }),
    tag: new DataLoader(async (ids) => {
      const found = await vocab.tags.getMany(tenantId, ids);
      return ids.map((id) => found.get(id) ?? null);
    }),
    descriptions: new DataLoader(async (tagIds) => {
      const found = await vocab.descriptions.listForTags(tenantId, tagIds);
      return tagIds.map((id) => found.get(id) ?? []);
    }),
  };
}
