import type { MutationResolvers, QueryResolvers } from '../../generated/graphql.ts';
import { requirePlatformAdmin } from '../../tenancy/principal.ts';
import { pageArgs, toConnection } from '../connections.ts';

export const tenantsQuery: QueryResolvers['tenants'] = async (_root, args, { principal, services }) => {
  requirePlatformAdmin(principal);
  return toConnection(await services.tenants.list(pageArgs(args, services.maxPageSize)));
};

export const createTenantMutation: MutationResolvers['createTenant'] = (_root, { input }, { principal, services }) => {
  requirePlatformAdmin(principal);
  return services.tenants.create(input);
};
