import type { Resolvers } from '../generated/graphql.ts';
import GraphQLUpload from 'graphql-upload/GraphQLUpload.mjs';
import { apiKeysQuery, createApiKeyMutation, revokeApiKeyMutation, viewerQuery, Viewer } from './api-keys.ts';
import { healthQuery } from './health.ts';
import { modelInfoQuery } from './model.ts';
import { DateTimeScalar } from './scalars.ts';
import { createTenantMutation, tenantsQuery } from './tenants.ts';

/** Thin by design: each resolver checks who calls, then hands over to one service. */
export const resolvers: Resolvers = {
  DateTime: DateTimeScalar,
  Upload: GraphQLUpload,
  Query: {
    health: healthQuery,
    tenants: tenantsQuery,
    viewer: viewerQuery,
    apiKeys: apiKeysQuery,
    modelInfo: modelInfoQuery,
  },
  Mutation: {
    createTenant: createTenantMutation,
    createApiKey: createApiKeyMutation,
    revokeApiKey: revokeApiKeyMutation,
  },
  Viewer,
};
