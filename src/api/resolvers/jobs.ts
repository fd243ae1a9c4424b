import type { DescriptionJobItemResolvers, DescriptionJobResolvers, MutationResolvers, QueryResolvers } from '../../generated/graphql.ts';
import { notFound } from '../../core/errors.ts';
import { checkPageSize, toConnection } from '../../core/paging.ts';
import { requireTenant } from '../../tenancy/principal.ts';

export const descriptionJobQuery: QueryResolvers['descriptionJob'] = (_root, { id }, { principal, services }) =>
  services.vocab.jobs.get(requireTenant(principal).tenantId, id);

export const generateDescriptionsMutation: MutationResolvers['generateDescriptions'] = async (_root, { vocabularyId, tagIds }, { principal, services }) => {
  const { job } = await services.vocab.jobs.create(requireTenant(principal, 'ADMIN').tenantId, vocabularyId, { tagIds });
  return job;
};

export const cancelDescriptionJobMutation: MutationResolvers['cancelDescriptionJob'] = (_root, { id }, { principal, services }) =>
  services.vocab.jobs.cancel(requireTenant(principal, 'ADMIN').tenantId, id);

export const DescriptionJob: DescriptionJobResolvers = {
  items: async (job, args, { principal, services }) => {
    const first = checkPageSize(args.first ?? 50, services.config.limits.maxPageSize);
    const page = await services.vocab.jobs.items(requireTenant(principal).tenantId, job.id, { first, after: args.after, state: args.state });
    return toConnection(page);
  },
};

export const DescriptionJobItem: DescriptionJobItemResolvers = {
  tag: async (item, _args, { loaders }) => (await loaders().tag.load(item.tagId)) ?? Promise.reject(notFound('tag')),
};
