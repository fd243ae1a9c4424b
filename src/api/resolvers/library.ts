import type { ImageResultResolvers, MutationResolvers, QueryResolvers, StoredImageResolvers, StoredTagScoreResolvers } from '../../generated/graphql.ts';
import { badInput, notFound } from '../../core/errors.ts';
import { bytesPerValue } from '../../library/index.ts';
import { requireTenant } from '../../tenancy/principal.ts';
import { pageArgs, toConnection } from '../connections.ts';

/** Ids per delete request. */
const MAX_DELETE_IDS = 1_000;

export const imageQuery: QueryResolvers['image'] = (_root, { id }, { principal, services }) => services.library.image(requireTenant(principal).tenantId, id);

export const imagesQuery: QueryResolvers['images'] = async (_root, { vocabularyId, filter, ...args }, { principal, services }) => {
  const page = await services.library.list(requireTenant(principal).tenantId, vocabularyId, filter ?? {}, pageArgs(args, services.maxPageSize));
  const connection = toConnection(page);
  return {
    ...connection,
    edges: connection.edges.map(({ cursor, node }) => ({ cursor, node: node.image, score: node.tag })),
  };
};

export const searchImagesQuery: QueryResolvers['searchImages'] = (_root, { vocabularyId, text, first }, { principal, services, signal }) =>
  services.imageSearch.search(requireTenant(principal).tenantId, { vocabularyId, text, first }, signal);

const checkIds = (ids: readonly string[], field: string) => {
  if (ids.length > MAX_DELETE_IDS) throw badInput(`at most ${MAX_DELETE_IDS} ids per request`, { field });
};

export const deleteImagesMutation: MutationResolvers['deleteImages'] = (_root, { ids }, { principal, services }) => {
  checkIds(ids, 'ids');
  return services.library.delete(requireTenant(principal).tenantId, ids);
};

export const deleteImagesByExternalIdMutation: MutationResolvers['deleteImagesByExternalId'] = (_root, { externalIds }, { principal, services }) => {
  checkIds(externalIds, 'externalIds');
  return services.library.deleteByExternalId(requireTenant(principal).tenantId, externalIds);
};

export const StoredImage: StoredImageResolvers = {
  encoding: (img, _args, { services }) => ({
    dtype: img.encodingDtype === 'float16' ? 'FLOAT16' : 'FLOAT32',
    tokens: img.encodingTokens,
    dim: img.encodingDim,
    bytes: img.encodingTokens * img.encodingDim * bytesPerValue(img.encodingDtype),
    current: img.encoderId === services.engine.info.imageEncoderId,
  }),
  thumbnail: (img, _args, { principal, services }) => (img.thumbnailType ? services.library.thumbnailUrl(requireTenant(principal).tenantId, img.id) : null),
  results: async (img, { vocabularyId }, { principal, services }) => {
    const results = await services.library.results(requireTenant(principal).tenantId, img.id);
    return vocabularyId == null ? results : results.filter((r) => r.vocabularyId === vocabularyId);
  },
};

export const ImageResult: ImageResultResolvers = {
  vocabulary: async (r, _args, { loaders }) => (await loaders().vocabulary.load(r.vocabularyId)) ?? Promise.reject(notFound('vocabulary')),
  current: (r) => r.revision === r.currentRevision,
  scoredAt: (r) => r.updatedAt,
  tags: async (r, { passed, minScore }, { principal, services }) => {
    const scores = await services.library.scores(requireTenant(principal).tenantId, r.imageId, r.vocabularyId);
    return scores.filter((s) => (passed == null || s.passed === passed) && (minScore == null || s.score >= minScore));
  },
};

export const StoredTagScore: StoredTagScoreResolvers = {
  tag: async (s, _args, { loaders }) => (await loaders().tag.load(s.tagId)) ?? Promise.reject(notFound('tag')),
};

