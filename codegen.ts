import type { CodegenConfig } from '@graphql-codegen/cli';

// Resolver types come from schema.graphql, the single source of the API.
const config: CodegenConfig = {
  schema: 'schema.graphql',
  generates: {
    'src/generated/graphql.ts': {
      plugins: ['typescript', 'typescript-resolvers'],
      config: {
        useTypeImports: true,
        contextType: '../api/context.ts#RequestContext',
        mappers: {
          Tenant: '../generated/prisma/client.ts#Tenant as TenantModel',
          ApiKey: '../generated/prisma/client.ts#ApiKey as ApiKeyModel',
          Vocabulary: '../vocab/index.ts#Vocabulary as VocabularyModel',
          Tag: '../vocab/index.ts#TagView',
          TagDescription: '../vocab/index.ts#DescriptionView',
          DescriptionJob: '../vocab/index.ts#DescriptionJobView',
          DescriptionJobItem: '../vocab/index.ts#DescriptionJobItemView',
          TagScore: '../tagging/tagging-service.ts#TagScoreView',
          TaggingResult: '../tagging/tagging-service.ts#TaggingResultView',
          TagImageOutcome: '../tagging/tagging-service.ts#TagImageOutcomeView',
          Viewer: '../tenancy/principal.ts#TenantPrincipal',
        },
        scalars: {
          DateTime: 'Date | string',
          ID: 'string',
          Upload: "Promise<import('graphql-upload-minimal').FileUpload>",
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
