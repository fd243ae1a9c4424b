import type { DescriptionJobItemResolvers, DescriptionJobResolvers, MutationResolvers, QueryResolvers } from '../../generated/graphql.ts';
import { notFound } from '../../core/errors.ts';
import { requireTenant } from '../../tenancy/principal.ts';
import { pageArgs, toConnection } from '../connections.ts';

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
    const page = pageArgs(args, services.maxPageSize);
    const items = await services.vocab.jobs.items(requireTenant(principal).tenantId, job.id, { ...page, state: args.state });
    return toConnection(items);
  },
};

export const DescriptionJobItem: DescriptionJobItemResolvers = {
  tag: async (item, _args, { loaders }) => (await loaders().tag.load(item.tagId)) ?? Promise.reject(notFound('tag')),
};
