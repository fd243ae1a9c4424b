import { graphql } from '../generated/gql.ts';

// Every operation the console sends; codegen types each one from schema.graphql.

export const ViewerQuery = graphql(`
  query Viewer {
    viewer { role keyPrefix tenant { id name slug } }
  }
`);

export const PlatformProbeQuery = graphql(`
  query PlatformProbe {
    tenants(first: 1) { totalCount }
  }
`);

export const TenantsQuery = graphql(`
  query Tenants($first: Int!, $after: String) {
    tenants(first: $first, after: $after) {
      totalCount
      pageInfo { hasNextPage endCursor }
      edges { node { id name slug createdAt } }
    }
  }
`);

export const CreateTenantMutation = graphql(`
  mutation CreateTenant($input: CreateTenantInput!) {
    createTenant(input: $input) { id name slug }
  }
`);

export const CreateApiKeyMutation = graphql(`
  mutation CreateApiKey($input: CreateApiKeyInput!) {
    createApiKey(input: $input) { secret apiKey { id name role prefix } }
  }
`);

export const ApiKeysQuery = graphql(`
  query ApiKeys {
    apiKeys { id name role prefix createdAt lastUsedAt revokedAt }
  }
`);

export const RevokeApiKeyMutation = graphql(`
  mutation RevokeApiKey($id: ID!) {
    revokeApiKey(id: $id) { id revokedAt }
  }
`);

export const VocabulariesQuery = graphql(`
  query Vocabularies($after: String) {
    vocabularies(first: 100, after: $after) {
      totalCount
      pageInfo { hasNextPage endCursor }
      edges { node { id name revision fromBuiltin updatedAt stats { tags enabledTags pendingTags failedTags } } }
    }
  }
`);

export const CreateVocabularyMutation = graphql(`
  mutation CreateVocabulary($input: CreateVocabularyInput!) {
    createVocabulary(input: $input) { id name }
  }
`);

export const RenameVocabularyMutation = graphql(`
  mutation RenameVocabulary($id: ID!, $name: String!) {
    updateVocabulary(id: $id, input: { name: $name }) { id name revision }
  }
`);

export const DeleteVocabularyMutation = graphql(`
  mutation DeleteVocabulary($id: ID!) {
    deleteVocabulary(id: $id)
  }
`);

export const VocabularyQuery = graphql(`
  query Vocabulary($id: ID!) {
    vocabulary(id: $id) {
      id name revision fromBuiltin stats { tags enabledTags pendingTags failedTags }
      feedback { present absent tags }
      lastCalibration { target precision minPositives feedback changed revision createdAt }
    }
  }
`);

export const TagsQuery = graphql(`
  query Tags($id: ID!, $first: Int!, $after: String, $search: String) {
    vocabulary(id: $id) {
      id
      tags(first: $first, after: $after, search: $search) {
        totalCount
        pageInfo { hasNextPage endCursor }
        edges { node { ...TagRow } }
      }
    }
  }
  fragment TagRow on Tag {
    id name threshold thresholdOverride enabled aliases builtin status statusReason
    names { language name }
  }
`);

export const UpdateTagMutation = graphql(`
  mutation UpdateTag($id: ID!, $input: UpdateTagInput!) {
    updateTag(id: $id, input: $input) { ...TagRow }
  }
`);

export const AddTagsMutation = graphql(`
  mutation AddTags($vocabularyId: ID!, $tags: [TagInput!]!) {
    addTags(vocabularyId: $vocabularyId, tags: $tags) {
      results { index ok error { code message } tag { id name } }
      vocabulary { id revision }
    }
  }
`);

export const RemoveTagsMutation = graphql(`
  mutation RemoveTags($ids: [ID!]!) {
    removeTags(ids: $ids) { id ok error { code message } }
  }
`);

export const TagDescriptionsQuery = graphql(`
  query TagDescriptions($id: ID!) {
    tag(id: $id) { id name status statusReason descriptions { id text source generatorModel } }
  }
`);

export const SetTagDescriptionsMutation = graphql(`
  mutation SetTagDescriptions($tagId: ID!, $descriptions: [String!]!) {
    setTagDescriptions(tagId: $tagId, descriptions: $descriptions) {
      id status descriptions { id text source generatorModel }
    }
  }
`);

export const GenerateDescriptionsMutation = graphql(`
  mutation GenerateDescriptions($vocabularyId: ID!, $tagIds: [ID!]) {
    generateDescriptions(vocabularyId: $vocabularyId, tagIds: $tagIds) { id state total }
  }
`);

export const DescriptionJobQuery = graphql(`
  query DescriptionJob($id: ID!) {
    descriptionJob(id: $id) {
      id state generator total succeeded failed progress error
      items(first: 100, state: FAILED) { totalCount edges { node { id error tag { id name } } } }
    }
  }
`);

export const CancelDescriptionJobMutation = graphql(`
  mutation CancelDescriptionJob($id: ID!) {
    cancelDescriptionJob(id: $id) { id state }
  }
`);

export const ModelInfoQuery = graphql(`
  query ModelInfo {
    modelInfo { packName builtinTagCount descriptionGenerator executionProvider }
  }
`);

/** One image again, with the heat maps of its returned tags drawn over it (only when asked: a second decoder pass). */
export const TagImageHeatmapsMutation = graphql(`
  mutation TagImageHeatmaps($vocabularyId: ID!, $image: ImageInput!, $options: TagImageOptions, $size: Int) {
    tagImage(vocabularyId: $vocabularyId, image: $image, options: $options) {
      tags { tag { id } explain { heatmap { cls } heatmapPng(size: $size) } }
    }
  }
`);

export const TagImagesMutation = graphql(`
  mutation TagImages($vocabularyId: ID!, $images: [ImageInput!]!, $options: TagImageOptions) {
    tagImages(vocabularyId: $vocabularyId, images: $images, options: $options) {
      index
      error { code message }
      result {
        revision
        image { format width height }
        timing { totalMs inferenceMs }
        tags { ...Score }
        scores { ...Score }
      }
    }
  }
  fragment Score on TagScore {
    name score threshold passed descriptionSource usedFallback
    tag { id }
    explanation { text source weight }
  }
`);

/** The library's images scored against a vocabulary, with that vocabulary's kept scores. */
export const ImagesQuery = graphql(`
  query Images($vocabularyId: ID!, $filter: ImageFilter, $first: Int!, $after: String) {
    images(vocabularyId: $vocabularyId, filter: $filter, first: $first, after: $after) {
      totalCount
      pageInfo { hasNextPage endCursor }
      edges {
        score { score passed }
        node {
          id externalId thumbnail createdAt width height
          results(vocabularyId: $vocabularyId) { revision current tags { score passed tag { id name } } }
        }
      }
    }
  }
`);

export const SubmitFeedbackMutation = graphql(`
  mutation SubmitFeedback($imageId: ID!, $tagId: ID!, $present: Boolean!) {
    submitFeedback(imageId: $imageId, tagId: $tagId, present: $present) { imageId tagId present updatedAt }
  }
`);

export const CalibrateThresholdsMutation = graphql(`
  mutation CalibrateThresholds($vocabularyId: ID!, $target: CalibrationTargetInput!, $dryRun: Boolean!, $minPositives: Int!) {
    calibrateThresholds(vocabularyId: $vocabularyId, target: $target, dryRun: $dryRun, minPositives: $minPositives) {
      dryRun target precision minPositives feedback skippedImages
      changes { tagId name oldThreshold newThreshold positives negatives precisionBefore recallBefore expectedPrecision expectedRecall }
      kept { tagId name threshold positives reason }
      vocabulary { id revision }
    }
  }
`);
