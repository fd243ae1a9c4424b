import type { MutationResolvers, QueryResolvers, VocabularyResolvers } from '../../generated/graphql.ts';
import { notFound } from '../../core/errors.ts';
import { requireTenant } from '../../tenancy/principal.ts';
import { pageArgs, toConnection } from '../connections.ts';

export const vocabulariesQuery: QueryResolvers['vocabularies'] = async (_root, args, { principal, services }) => {
  const { tenantId } = requireTenant(principal);
  return toConnection(await services.vocab.vocabularies.list(tenantId, pageArgs(args, services.maxPageSize)));
};

// Through the request's loader: several `vocabulary(id:)` fields of one query take one read.
export const vocabularyQuery: QueryResolvers['vocabulary'] = async (_root, { id }, { principal, loaders }) => {
  requireTenant(principal);
  const found = await loaders().vocabulary.load(id);
  if (!found) throw notFound('vocabulary');
  return found;
};

export const Vocabulary: VocabularyResolvers = {
  tags: async (v, args, { principal, services }) => {
    const page = pageArgs(args, services.maxPageSize);
    const tags = await services.vocab.tags.list(requireTenant(principal).tenantId, v.id, { ...page, search: args.search });
    return toConnection(tags);
  },
  stats: (v, _args, { principal, services }) => services.vocab.vocabularies.stats(requireTenant(principal).tenantId, v.id),
  retagging: (v, _args, { principal, services }) => services.libraryJobs.retagProgress(requireTenant(principal).tenantId, v.id),
  feedback: (v, _args, { principal, services }) => services.feedback.counts(requireTenant(principal).tenantId, v.id),
  lastCalibration: async (v, _args, { principal, services }) => {
    const last = await services.feedback.lastCalibration(requireTenant(principal).tenantId, v.id);
    return last && { ...last, target: last.target.kind, precision: last.target.kind === 'precision' ? last.target.precision : null };
  },
};

export const createVocabularyMutation: MutationResolvers['createVocabulary'] = (_root, { input }, { principal, services }) =>
  services.vocab.vocabularies.create(requireTenant(principal, 'ADMIN').tenantId, input);

export const updateVocabularyMutation: MutationResolvers['updateVocabulary'] = async (_root, { id, input }, { principal, services }) => {
  const { tenantId } = requireTenant(principal, 'ADMIN');
  return input.name == null ? services.vocab.vocabularies.get(tenantId, id) : services.vocab.vocabularies.rename(tenantId, id, input.name);
};

export const deleteVocabularyMutation: MutationResolvers['deleteVocabulary'] = (_root, { id }, { principal, services }) =>
  services.vocab.vocabularies.delete(requireTenant(principal, 'ADMIN').tenantId, id);
