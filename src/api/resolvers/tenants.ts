import type { MutationResolvers, QueryResolvers } from '../../generated/graphql.ts';
import { checkPageSize, toConnection } from '../../core/paging.ts';
import { requirePlatformAdmin } from '../../tenancy/principal.ts';

export const tenantsQuery: QueryResolvers['tenants'] = async (_root, args, { principal, services }) => {
  requirePlatformAdmin(principal);
  const first = checkPageSize(args.first ?? 50, services.config.limits.maxPageSize);
  return toConnection(await services.tenants.list({ first, after: args.after }));
};

export const createTenantMutation: MutationResolvers['createTenant'] = (_root, { input }, { principal, services }) => {
  requirePlatformAdmin(principal);
  return services.tenants.create(input);
};
