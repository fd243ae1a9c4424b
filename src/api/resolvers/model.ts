import type { QueryResolvers } from '../../generated/graphql.ts';
import type { EngineInfo } from '../../inference/index.ts';
import { requireTenant } from '../../tenancy/principal.ts';

export const modelInfoQuery: QueryResolvers['modelInfo'] = (_root, _args, { principal, services }) => {
  requireTenant(principal);
  const info = services.engine.info;
  return {
    packName: info.packName,
    precision: info.precision,
    randomWeights: info.randomWeights,
    quantization: quantization(info.quantization),
    imageSize: info.imageSize,
    embedDim: info.embedDim,
    executionProvider: info.provider,
    builtinTagCount: info.builtinTagCount,
    descriptionGenerator: services.vocab.descriptionGenerator,
    heatmaps: info.heatmaps !== null,
  };
};

/** The manifest's nested drift report, flattened to the API's fields. */
function quantization(q: EngineInfo['quantization']) {
  if (!q) return null;
  const d = q.drift;
  return {
    method: q.method,
    selftestTolerance: q.selftestTolerance ?? null,
    drift: d
      ? {
          images: d.images,
          tags: d.tags,
          imageEmbeddingCosineMin: d.imageEmbeddingCosine.min,
          imageEmbeddingCosineMean: d.imageEmbeddingCosine.mean,
          logitMaxAbsDiff: d.logitAbsDiff.max,
          logitMeanAbsDiff: d.logitAbsDiff.mean,
          logitPearsonMin: d.logitPearson.min,
          logitPearsonMean: d.logitPearson.mean,
          passedTagsJaccardMin: d.passedTags.jaccardMin,
          passedTagsJaccardMean: d.passedTags.jaccardMean,
        }
      : null,
  };
}
