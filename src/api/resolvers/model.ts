import type { QueryResolvers } from '../../generated/graphql.ts';
import { requireTenant } from '../../tenancy/principal.ts';

export const modelInfoQuery: QueryResolvers['modelInfo'] = (_root, _args, { principal, services }) => {
  requireTenant(principal);
  const info = services.engine.info;
  return {
    packName: info.packName,
    precision: info.precision,
    randomWeights: info.randomWeights,
    imageSize: info.imageSize,
    embedDim: info.embedDim,
    executionProvider: info.provider,
    builtinTagCount: info.builtinTagCount,
    descriptionGenerator: services.vocab.descriptionGenerator,
    heatmaps: info.heatmaps !== null,
  };
};
