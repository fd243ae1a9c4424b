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
          ApiKey: '../generated/prisma/client.ts#ApiKey as ApiKeyModel',
          Vocabulary: '../generated/prisma/client.ts#Vocabulary as VocabularyModel',
          DescriptionJob: '../generated/prisma/client.ts#DescriptionJob as DescriptionJobModel',
          Viewer: '../tenancy/principal.ts#TenantPrincipal',
        },
        scalars: {
          DateTime: 'Date | string',
          ID: 'string',
          Upload: "Promise<import('graphql-upload/processRequest.mjs').FileUpload>",
        },
        enumsAsTypes: true,
        strictScalars: true,
        avoidOptionals: { field: true, inputValue: false, object: false, defaultValue: false },
      },
    },
  },
  silent: true,
};
export default config;
