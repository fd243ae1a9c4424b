import type { MutationResolvers } from '../../generated/graphql.ts';
import { badInput } from '../../core/errors.ts';
import { requireTenant } from '../../tenancy/principal.ts';

export const submitFeedbackMutation: MutationResolvers['submitFeedback'] = (_root, { imageId, tagId, present }, { principal, services }) =>
  services.feedback.submit(requireTenant(principal).tenantId, imageId, tagId, present);

export const calibrateThresholdsMutation: MutationResolvers['calibrateThresholds'] = async (_root, { vocabularyId, target, dryRun, minPositives }, { principal, services }) => {
  const { tenantId } = requireTenant(principal, 'ADMIN');
  const byF1 = target.maxF1 === true;
  const byPrecision = target.precision !== undefined && target.precision !== null;
  if (byF1 === byPrecision) throw badInput('target: give exactly one of maxF1: true and precision', { field: 'target' });
  const outcome = await services.feedback.calibrate(tenantId, vocabularyId, byF1 ? { kind: 'maxF1' } : { kind: 'precision', precision: target.precision! }, {
    dryRun: dryRun ?? true,
    minPositives: minPositives ?? 10,
  });
  return {
    dryRun: outcome.dryRun,
    target: outcome.target.kind,
    precision: outcome.target.kind === 'precision' ? outcome.target.precision : null,
    minPositives: outcome.minPositives,
    feedback: outcome.feedback,
    skippedImages: outcome.skippedImages,
    changes: outcome.changes.map((c) => ({
      tagId: c.tagId,
      name: c.name,
      oldThreshold: c.old,
      newThreshold: c.new,
      positives: c.positives,
      negatives: c.negatives,
      precisionBefore: c.before.precision,
      recallBefore: c.before.recall,
      expectedPrecision: c.expected.precision,
      expectedRecall: c.expected.recall,
    })),
    kept: outcome.kept,
    vocabulary: await services.vocab.vocabularies.get(tenantId, vocabularyId),
  };
};
