import type { CodegenConfig } from '@graphql-codegen/cli';

// Resolver types come from schema.graphql, the single source of the API.
const config: CodegenConfig = {
  schema: 'schema.graphql',
  generates: {
    'src/generated/graphql.ts': {
      plugins: ['typescript', 'typescript-resolvers'],
      config: {
        useTypeImports: true,
        contextType: '../resolvers/context.ts#RequestContext',
        mappers: {
          Tenant: '../generated/prisma/client.ts#Tenant as TenantModel',
        },
        scalars: { DateTime: 'Date | string', ID: 'string' },
        enumsAsTypes: true,
        strictScalars: true,
        avoidOptionals: { field: true, inputValue: false, object: false, defaultValue: false },
      },
    },
  },
  silent: true,
};
export default config;
