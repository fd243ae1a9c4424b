import type { Resolvers } from '../../generated/graphql.ts';
import { GraphQLUpload } from 'graphql-upload-minimal';
import { apiKeysQuery, createApiKeyMutation, revokeApiKeyMutation, viewerQuery, Viewer } from './api-keys.ts';
import { healthQuery } from './health.ts';
import { cancelImportJobMutation, ImportJob, ImportJobItem, importImagesMutation, importJobQuery } from './library-jobs.ts';
import { cancelDescriptionJobMutation, DescriptionJob, DescriptionJobItem, descriptionJobQuery, generateDescriptionsMutation } from './jobs.ts';
import { modelInfoQuery } from './model.ts';
import { TagExplanation, tagImageMutation, tagImagesMutation, TagScore } from './tagging.ts';
import { calibrateThresholdsMutation, submitFeedbackMutation } from './feedback.ts';
import { addTagsMutation, removeTagsMutation, setTagDescriptionsMutation, setTagThresholdsMutation, Tag, tagQuery, updateTagMutation } from './tags.ts';
import {
  createVocabularyMutation,
  deleteVocabularyMutation,
  updateVocabularyMutation,
  vocabulariesQuery,
  Vocabulary,
  vocabularyQuery,
} from './vocabularies.ts';
import { DateTimeScalar } from './scalars.ts';
import { createTenantMutation, setTenantLimitsMutation, Tenant, tenantsQuery } from './tenants.ts';
import { usageQuery } from './usage.ts';
import { deleteImagesByExternalIdMutation, deleteImagesMutation, ImageResult, imageQuery, imagesQuery, searchImagesQuery, StoredImage, StoredTagScore } from './library.ts';

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
    vocabularies: vocabulariesQuery,
    vocabulary: vocabularyQuery,
    tag: tagQuery,
    descriptionJob: descriptionJobQuery,
    importJob: importJobQuery,
    usage: usageQuery,
    image: imageQuery,
    images: imagesQuery,
    searchImages: searchImagesQuery,
  },
  Mutation: {
    createTenant: createTenantMutation,
    setTenantLimits: setTenantLimitsMutation,
    createApiKey: createApiKeyMutation,
    revokeApiKey: revokeApiKeyMutation,
    createVocabulary: createVocabularyMutation,
    updateVocabulary: updateVocabularyMutation,
    deleteVocabulary: deleteVocabularyMutation,
    addTags: addTagsMutation,
    updateTag: updateTagMutation,
    removeTags: removeTagsMutation,
    setTagThresholds: setTagThresholdsMutation,
    submitFeedback: submitFeedbackMutation,
    calibrateThresholds: calibrateThresholdsMutation,
    setTagDescriptions: setTagDescriptionsMutation,
    generateDescriptions: generateDescriptionsMutation,
    cancelDescriptionJob: cancelDescriptionJobMutation,
    tagImage: tagImageMutation,
    tagImages: tagImagesMutation,
    importImages: importImagesMutation,
    cancelImportJob: cancelImportJobMutation,
    deleteImages: deleteImagesMutation,
    deleteImagesByExternalId: deleteImagesByExternalIdMutation,
  },
  Tenant,
  Viewer,
  Vocabulary,
  Tag,
  TagScore,
  TagExplanation,
  DescriptionJob,
  DescriptionJobItem,
  ImportJob,
  ImportJobItem,
  StoredImage,
  ImageResult,
  StoredTagScore,
};
