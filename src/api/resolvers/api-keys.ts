import type { MutationResolvers, QueryResolvers, ViewerResolvers } from '../../generated/graphql.ts';
import { badInput, notFound } from '../../core/errors.ts';
import { requireTenant, unauthenticated } from '../../tenancy/principal.ts';

export const viewerQuery: QueryResolvers['viewer'] = (_root, _args, { principal }) => requireTenant(principal);

export const Viewer: ViewerResolvers = {
  tenant: async (p, _args, { services }) => (await services.tenants.get(p.tenantId)) ?? Promise.reject(notFound('tenant')),
  role: (p) => p.role,
  keyPrefix: async (p, _args, { services }) => (await services.apiKeys.getPrefix(p.tenantId, p.keyId)) ?? '',
};

export const apiKeysQuery: QueryResolvers['apiKeys'] = (_root, _args, { principal, services }) =>
  services.apiKeys.list(requireTenant(principal, 'ADMIN').tenantId);

export const createApiKeyMutation: MutationResolvers['createApiKey'] = (_root, { input }, { principal, services }) => {
  if (principal.kind === 'anonymous') throw unauthenticated();
  let tenantId: string;
  if (principal.kind === 'platform-admin') {
    if (!input.tenantId) throw badInput('the platform admin must name the tenant (tenantId)', { field: 'tenantId' });
    tenantId = input.tenantId;
  } else {
    tenantId = requireTenant(principal, 'ADMIN').tenantId;
    // A tenant may name itself; any other id is treated as one that does not exist.
    if (input.tenantId && input.tenantId !== tenantId) throw notFound('tenant');
  }
  return services.apiKeys.create(tenantId, { name: input.name, role: input.role });
};

export const revokeApiKeyMutation: MutationResolvers['revokeApiKey'] = (_root, { id }, { principal, services }) =>
  services.apiKeys.revoke(requireTenant(principal, 'ADMIN').tenantId, id);
