import type { MutationResolvers, QueryResolvers } from '../generated/graphql.ts';
import { requireTenant } from '../tenancy/principal.ts';

export const descriptionJobQuery: QueryResolvers['descriptionJob'] = (_root, { id }, { principal, services }) =>
  services.vocab.jobs.get(requireTenant(principal).tenantId, id);

export const generateDescriptionsMutation: MutationResolvers['generateDescriptions'] = async (_root, { vocabularyId, tagIds }, { principal, services }) => {
  const { job } = await services.vocab.jobs.create(requireTenant(principal, 'ADMIN').tenantId, vocabularyId, { tagIds });
  return job;
};
