import type { QueryResolvers } from '../../generated/graphql.ts';
import { notFound } from '../../core/errors.ts';
import { requireTenant } from '../../tenancy/principal.ts';

/** A tenant ADMIN sees its own usage; another tenant's id is answered like one that does not exist. The platform admin sees any, or all. */
export const usageQuery: QueryResolvers['usage'] = (_root, { from, to, granularity, tenantId }, { principal, services }) => {
  let scope: string | null;
  if (principal.kind === 'platform-admin') scope = tenantId ?? null;
  else {
    scope = requireTenant(principal, 'ADMIN').tenantId;
    if (tenantId && tenantId !== scope) throw notFound('tenant');
  }
  return services.usage.report({ tenantId: scope, from: new Date(from), to: new Date(to), granularity: granularity ?? 'DAY' });
};
