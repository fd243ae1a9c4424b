import type { QueryResolvers } from '../../generated/graphql.ts';

export const healthQuery: QueryResolvers['health'] = async (_root, _args, { services }) => {
  const { database } = await services.health.check();
  return {
    status: database ? 'OK' : 'DEGRADED',
    database,
    databaseKind: services.databaseKind,
    version: services.version,
  };
};
