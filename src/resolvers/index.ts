import type { Resolvers } from '../generated/graphql.ts';
import { healthQuery } from './health.ts';
import { DateTimeScalar } from './scalars.ts';
import { createTenantMutation, tenantsQuery } from './tenants.ts';

/** Thin by design: each resolver checks who calls, then hands over to one service. */
export const resolvers: Resolvers = {
  DateTime: DateTimeScalar,
  Query: {
    health: healthQuery,
    tenants: tenantsQuery,
  },
  Mutation: {
    createTenant: createTenantMutation,
  },
};
