import type { MutationResolvers, QueryResolvers, TenantResolvers } from '../../generated/graphql.ts';
import { notFound } from '../../core/errors.ts';
import { LIMIT_NAMES } from '../../limits/index.ts';
import { requirePlatformAdmin, requireTenant } from '../../tenancy/principal.ts';
import { pageArgs, toConnection } from '../connections.ts';

export const tenantsQuery: QueryResolvers['tenants'] = async (_root, args, { principal, services }) => {
  requirePlatformAdmin(principal);
  return toConnection(await services.tenants.list(pageArgs(args, services.maxPageSize)));
};

export const createTenantMutation: MutationResolvers['createTenant'] = (_root, { input }, { principal, services }) => {
  requirePlatformAdmin(principal);
  return services.tenants.create(input);
};

export const setTenantLimitsMutation: MutationResolvers['setTenantLimits'] = async (_root, { tenantId, input }, { principal, services }) => {
  requirePlatformAdmin(principal);
  await services.limits.set(tenantId, input);
  return (await services.tenants.get(tenantId)) ?? Promise.reject(notFound('tenant'));
};

export const Tenant: TenantResolvers = {
  limits: async (tenant, _args, { principal, services }) => {
    // A tenant reaches only itself (through `viewer`); the platform admin any tenant.
    if (principal.kind !== 'platform-admin' && requireTenant(principal).tenantId !== tenant.id) throw notFound('tenant');
    const { effective, own } = await services.limits.view(tenant.id);
    return { ...effective, own: LIMIT_NAMES.filter((n) => own[n] !== null) };
  },
};
