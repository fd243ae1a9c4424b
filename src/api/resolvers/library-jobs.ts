import type { ImportJobItemResolvers, ImportJobResolvers, MutationResolvers, QueryResolvers } from '../../generated/graphql.ts';
import { requireTenant } from '../../tenancy/principal.ts';
import { pageArgs, toConnection } from '../connections.ts';

export const importJobQuery: QueryResolvers['importJob'] = (_root, { id }, { principal, services }) => services.libraryJobs.getImport(requireTenant(principal).tenantId, id);

export const importImagesMutation: MutationResolvers['importImages'] = async (_root, { vocabularyId, images }, { principal, services, signal }) => {
  const { tenantId } = requireTenant(principal);
  const job = await services.libraryJobs.importImages(tenantId, vocabularyId, images, signal);
  return services.libraryJobs.getImport(tenantId, job.id);
};

export const cancelImportJobMutation: MutationResolvers['cancelImportJob'] = (_root, { id }, { principal, services }) =>
  services.libraryJobs.cancelImport(requireTenant(principal).tenantId, id);

export const ImportJob: ImportJobResolvers = {
  pending: (job) => job.counts.PENDING,
  running: (job) => job.counts.RUNNING,
  succeeded: (job) => job.counts.SUCCEEDED,
  failed: (job) => job.counts.FAILED,
  cancelled: (job) => job.counts.CANCELLED,
  progress: (job) => (job.total === 0 ? 1 : (job.counts.SUCCEEDED + job.counts.FAILED + job.counts.CANCELLED) / job.total),
  stagedBytes: (job) => Number(job.stagedBytes),
  items: async (job, args, { principal, services }) => {
    const page = pageArgs(args, services.maxPageSize);
    return toConnection(await services.libraryJobs.items(requireTenant(principal).tenantId, job.id, { ...page, state: args.state }));
  },
};

export const ImportJobItem: ImportJobItemResolvers = {
  index: (item) => item.position,
};
