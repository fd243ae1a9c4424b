import type { CodegenConfig } from '@graphql-codegen/cli';

// Types come from schema.graphql, the single source of the API: the server's resolver types, and
// the console's typed documents (each `graphql(...)` call in console/src is typed by its text).
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
          TagExplanation: '../tagging/tagging-service.ts#TagExplanationView',
          TaggingResult: '../tagging/tagging-service.ts#TaggingResultView',
          TagImageOutcome: '../tagging/tagging-service.ts#TagImageOutcomeView',
          Viewer: '../tenancy/principal.ts#TenantPrincipal',
          ImportJob: '../library/jobs/job-service.ts#LibraryJobView',
          ImportJobItem: '../library/jobs/job-service.ts#LibraryJobItemRow',
          RetagProgress: '../library/jobs/job-service.ts#RetagProgressView',
          StoredImage: '../library/index.ts#ImageRow as ImageRowModel',
          StoredImageOutcome: '../library/index.ts#StoredImageOutcome as StoredImageOutcomeModel',
          ImageResult: '../library/index.ts#ResultRow as ResultRowModel',
          StoredTagScore: '../library/index.ts#StoredTagScore as StoredTagScoreModel',
          ImageSearchResult: '../library/index.ts#ImageSearchResult as ImageSearchResultModel',
          ImageSearchHit: '../library/index.ts#ImageSearchHit as ImageSearchHitModel',
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
    'console/src/generated/': {
      documents: ['console/src/**/*.{ts,tsx}', '!console/src/generated/**'],
      preset: 'client',
      // Documents as plain strings: the console sends them as they are and ships no GraphQL parser.
      config: {
        documentMode: 'string',
        useTypeImports: true,
        enumsAsTypes: true,
        strictScalars: true,
        scalars: { DateTime: 'string', ID: 'string', Upload: 'File' },
      },
      presetConfig: { fragmentMasking: false },
    },
  },
  silent: true,
};
export default config;
