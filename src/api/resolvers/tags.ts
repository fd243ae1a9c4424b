import type { MutationResolvers, QueryResolvers, TagResolvers } from '../../generated/graphql.ts';
import { notFound } from '../../core/errors.ts';
import { requireTenant } from '../../tenancy/principal.ts';

export const Tag: TagResolvers = {
  descriptions: (tag, _args, { loaders }) => loaders().descriptions.load(tag.id),
};

export const tagQuery: QueryResolvers['tag'] = async (_root, { id }, { principal, services }) => {
  const tags = await services.vocab.tags.getMany(requireTenant(principal).tenantId, [id]);
  return tags.get(id) ?? Promise.reject(notFound('tag'));
};

export const addTagsMutation: MutationResolvers['addTags'] = async (_root, { vocabularyId, tags }, { principal, services }) => {
  const { tenantId } = requireTenant(principal, 'ADMIN');
  const { results } = await services.vocab.tags.add(tenantId, vocabularyId, tags);
  return {
    results: results.map((r) => ({ index: r.index, ok: r.ok, tag: r.tag ?? null, error: r.error ?? null })),
    vocabulary: await services.vocab.vocabularies.get(tenantId, vocabularyId),
  };
};

export const updateTagMutation: MutationResolvers['updateTag'] = (_root, { id, input }, { principal, services }) => {
  const { tenantId } = requireTenant(principal, 'ADMIN');
  // GraphQL tells "threshold: null" (remove the override) from an omitted field by key presence.
  const threshold = 'threshold' in input ? (input.threshold ?? null) : undefined;
  return services.vocab.tags.update(tenantId, id, { ...input, threshold });
};

export const setTagThresholdsMutation: MutationResolvers['setTagThresholds'] = async (_root, { vocabularyId, thresholds }, { principal, services }) => {
  const { tenantId } = requireTenant(principal, 'ADMIN');
  const { results } = await services.vocab.tags.setThresholds(tenantId, vocabularyId, thresholds.map((t) => ({ tagId: t.tagId, threshold: t.threshold ?? null })));
  return {
    results: results.map((r) => ({ id: r.id, ok: r.ok, error: r.error ?? null })),
    vocabulary: await services.vocab.vocabularies.get(tenantId, vocabularyId),
  };
};

export const removeTagsMutation: MutationResolvers['removeTags'] = async (_root, { ids }, { principal, services }) => {
  const results = await services.vocab.tags.remove(requireTenant(principal, 'ADMIN').tenantId, ids);
  return results.map((r) => ({ id: r.id, ok: r.ok, error: r.error ?? null }));
};

export const setTagDescriptionsMutation: MutationResolvers['setTagDescriptions'] = async (_root, { tagId, descriptions }, { principal, services }) => {
  const { tenantId } = requireTenant(principal, 'ADMIN');
  await services.vocab.descriptions.replace(tenantId, tagId, descriptions);
  const tag = await services.vocab.tags.getMany(tenantId, [tagId]);
  return tag.get(tagId) ?? Promise.reject(notFound('tag'));
};
