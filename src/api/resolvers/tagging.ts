import type { MutationResolvers, TagScoreResolvers } from '../../generated/graphql.ts';
import { notFound } from '../../core/errors.ts';
import { requireTenant } from '../../tenancy/principal.ts';

export const tagImageMutation: MutationResolvers['tagImage'] = (_root, { vocabularyId, image, options }, { principal, services, signal }) =>
  services.tagging.tagImage(requireTenant(principal).tenantId, vocabularyId, image, options ?? {}, signal);

export const tagImagesMutation: MutationResolvers['tagImages'] = (_root, { vocabularyId, images, options }, { principal, services, signal }) =>
  services.tagging.tagImages(requireTenant(principal).tenantId, vocabularyId, images, options ?? {}, signal);

export const TagScore: TagScoreResolvers = {
  tag: async (s, _args, { loaders }) => (await loaders().tag.load(s.tagId)) ?? Promise.reject(notFound('tag')),
};
