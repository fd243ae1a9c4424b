import type { MutationResolvers, TagExplanationResolvers, TagScoreResolvers } from '../../generated/graphql.ts';
import { notFound } from '../../core/errors.ts';
import { requireTenant } from '../../tenancy/principal.ts';
import { taggingWants } from '../selection.ts';

export const tagImageMutation: MutationResolvers['tagImage'] = (_root, { vocabularyId, image, options }, { principal, services, signal }, info) =>
  services.tagging.tagImage(requireTenant(principal).tenantId, vocabularyId, image, options ?? {}, signal, taggingWants(info));

export const tagImagesMutation: MutationResolvers['tagImages'] = (_root, { vocabularyId, images, options }, { principal, services, signal }, info) =>
  services.tagging.tagImages(requireTenant(principal).tenantId, vocabularyId, images, options ?? {}, signal, taggingWants(info));

export const TagScore: TagScoreResolvers = {
  tag: async (s, _args, { loaders }) => (await loaders().tag.load(s.tagId)) ?? Promise.reject(notFound('tag')),
};

export const TagExplanation: TagExplanationResolvers = {
  heatmap: (e, { layer }, { services }) => services.tagging.heatmap(e, layer),
  heatmapPng: (e, { size, layer }, { services, overlays }) => services.tagging.heatmapPng(e, size ?? undefined, layer, overlays),
};
