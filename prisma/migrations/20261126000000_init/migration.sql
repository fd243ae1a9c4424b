-- CreateEnum
CREATE TYPE "ApiKeyRole" AS ENUM ('ADMIN', 'CLIENT');

-- CreateEnum
CREATE TYPE "DescriptionState" AS ENUM ('PENDING', 'GENERATING', 'READY', 'FAILED');

-- CreateEnum
CREATE TYPE "DescriptionSource" AS ENUM ('LLM', 'TEMPLATE', 'MANUAL', 'BUILTIN');

-- CreateEnum
CREATE TYPE "JobState" AS ENUM ('QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED');

-- CreateTable
CREATE TABLE "tenants" (
    "id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "slug" TEXT NOT NULL,
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "tenants_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "api_keys" (
    "id" UUID NOT NULL,
    "tenant_id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "prefix" TEXT NOT NULL,
    "hash" TEXT NOT NULL,
    "role" "ApiKeyRole" NOT NULL,
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "last_used_at" TIMESTAMP(3),
    "revoked_at" TIMESTAMP(3),

    CONSTRAINT "api_keys_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "vocabularies" (
    "id" UUID NOT NULL,
    "tenant_id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "revision" INTEGER NOT NULL DEFAULT 1,
    "from_builtin" BOOLEAN NOT NULL DEFAULT false,
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "vocabularies_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "tags" (
    "id" UUID NOT NULL,
    "tenant_id" UUID NOT NULL,
    "vocabulary_id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "key" TEXT NOT NULL,
    "threshold" DOUBLE PRECISION,
    "enabled" BOOLEAN NOT NULL DEFAULT true,
    "builtin_index" INTEGER,
    "description_state" "DescriptionState" NOT NULL DEFAULT 'READY',
    "description_error" TEXT,
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "tags_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "tag_aliases" (
    "id" UUID NOT NULL,
    "tenant_id" UUID NOT NULL,
    "vocabulary_id" UUID NOT NULL,
    "tag_id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "key" TEXT NOT NULL,
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "tag_aliases_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "tag_names" (
    "id" UUID NOT NULL,
    "tenant_id" UUID NOT NULL,
    "tag_id" UUID NOT NULL,
    "language" TEXT NOT NULL,
    "name" TEXT NOT NULL,

    CONSTRAINT "tag_names_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "tag_descriptions" (
    "id" UUID NOT NULL,
    "tenant_id" UUID NOT NULL,
    "tag_id" UUID NOT NULL,
    "text" TEXT NOT NULL,
    "text_hash" TEXT NOT NULL,
    "source" "DescriptionSource" NOT NULL,
    "position" INTEGER NOT NULL DEFAULT 0,
    "generator_model" TEXT,
    "generator_prompt" TEXT,
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "tag_descriptions_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "text_embeddings" (
    "encoder_id" TEXT NOT NULL,
    "text_hash" TEXT NOT NULL,
    "dim" INTEGER NOT NULL,
    "vector" BYTEA NOT NULL,
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "text_embeddings_pkey" PRIMARY KEY ("encoder_id","text_hash")
);

-- CreateTable
CREATE TABLE "description_jobs" (
    "id" UUID NOT NULL,
    "tenant_id" UUID NOT NULL,
    "vocabulary_id" UUID NOT NULL,
    "state" "JobState" NOT NULL DEFAULT 'QUEUED',
    "generator" TEXT NOT NULL,
    "total" INTEGER NOT NULL DEFAULT 0,
    "succeeded" INTEGER NOT NULL DEFAULT 0,
    "failed" INTEGER NOT NULL DEFAULT 0,
    "error" TEXT,
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMP(3) NOT NULL,
    "finished_at" TIMESTAMP(3),

    CONSTRAINT "description_jobs_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "description_job_items" (
    "id" UUID NOT NULL,
    "tenant_id" UUID NOT NULL,
    "job_id" UUID NOT NULL,
    "tag_id" UUID NOT NULL,
    "state" "DescriptionState" NOT NULL DEFAULT 'PENDING',
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "error" TEXT,
    "updated_at" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "description_job_items_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "tagging_runs" (
    "id" UUID NOT NULL,
    "tenant_id" UUID NOT NULL,
    "vocabulary_id" UUID,
    "revision" INTEGER NOT NULL,
    "image_count" INTEGER NOT NULL,
    "failed_count" INTEGER NOT NULL DEFAULT 0,
    "duration_ms" INTEGER NOT NULL,
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "tagging_runs_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "tenants_slug_key" ON "tenants"("slug");

-- CreateIndex
CREATE UNIQUE INDEX "api_keys_prefix_key" ON "api_keys"("prefix");

-- CreateIndex
CREATE UNIQUE INDEX "api_keys_hash_key" ON "api_keys"("hash");

-- CreateIndex
CREATE INDEX "api_keys_tenant_id_idx" ON "api_keys"("tenant_id");

-- CreateIndex
CREATE UNIQUE INDEX "vocabularies_tenant_id_name_key" ON "vocabularies"("tenant_id", "name");

-- CreateIndex
CREATE UNIQUE INDEX "vocabularies_tenant_id_id_key" ON "vocabularies"("tenant_id", "id");

-- CreateIndex
CREATE INDEX "tags_tenant_id_idx" ON "tags"("tenant_id");

-- CreateIndex
CREATE UNIQUE INDEX "tags_vocabulary_id_key_key" ON "tags"("vocabulary_id", "key");

-- CreateIndex
CREATE UNIQUE INDEX "tags_tenant_id_id_key" ON "tags"("tenant_id", "id");

-- CreateIndex
CREATE INDEX "tag_aliases_tag_id_idx" ON "tag_aliases"("tag_id");

-- CreateIndex
CREATE UNIQUE INDEX "tag_aliases_vocabulary_id_key_key" ON "tag_aliases"("vocabulary_id", "key");

-- CreateIndex
CREATE UNIQUE INDEX "tag_names_tag_id_language_key" ON "tag_names"("tag_id", "language");

-- CreateIndex
CREATE INDEX "tag_descriptions_tag_id_position_idx" ON "tag_descriptions"("tag_id", "position");

-- CreateIndex
CREATE INDEX "tag_descriptions_tenant_id_idx" ON "tag_descriptions"("tenant_id");

-- CreateIndex
CREATE INDEX "description_jobs_tenant_id_created_at_idx" ON "description_jobs"("tenant_id", "created_at");

-- CreateIndex
CREATE UNIQUE INDEX "description_jobs_tenant_id_id_key" ON "description_jobs"("tenant_id", "id");

-- CreateIndex
CREATE INDEX "description_job_items_state_idx" ON "description_job_items"("state");

-- CreateIndex
CREATE UNIQUE INDEX "description_job_items_job_id_tag_id_key" ON "description_job_items"("job_id", "tag_id");

-- CreateIndex
CREATE INDEX "tagging_runs_tenant_id_created_at_idx" ON "tagging_runs"("tenant_id", "created_at");

-- AddForeignKey
ALTER TABLE "api_keys" ADD CONSTRAINT "api_keys_tenant_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "vocabularies" ADD CONSTRAINT "vocabularies_tenant_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "tags" ADD CONSTRAINT "tags_tenant_id_vocabulary_id_fkey" FOREIGN KEY ("tenant_id", "vocabulary_id") REFERENCES "vocabularies"("tenant_id", "id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "tag_aliases" ADD CONSTRAINT "tag_aliases_tenant_id_tag_id_fkey" FOREIGN KEY ("tenant_id", "tag_id") REFERENCES "tags"("tenant_id", "id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "tag_names" ADD CONSTRAINT "tag_names_tenant_id_tag_id_fkey" FOREIGN KEY ("tenant_id", "tag_id") REFERENCES "tags"("tenant_id", "id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "tag_descriptions" ADD CONSTRAINT "tag_descriptions_tenant_id_tag_id_fkey" FOREIGN KEY ("tenant_id", "tag_id") REFERENCES "tags"("tenant_id", "id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "description_jobs" ADD CONSTRAINT "description_jobs_tenant_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "description_jobs" ADD CONSTRAINT "description_jobs_tenant_id_vocabulary_id_fkey" FOREIGN KEY ("tenant_id", "vocabulary_id") REFERENCES "vocabularies"("tenant_id", "id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "description_job_items" ADD CONSTRAINT "description_job_items_tenant_id_job_id_fkey" FOREIGN KEY ("tenant_id", "job_id") REFERENCES "description_jobs"("tenant_id", "id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "description_job_items" ADD CONSTRAINT "description_job_items_tenant_id_tag_id_fkey" FOREIGN KEY ("tenant_id", "tag_id") REFERENCES "tags"("tenant_id", "id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "tagging_runs" ADD CONSTRAINT "tagging_runs_tenant_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "tagging_runs" ADD CONSTRAINT "tagging_runs_vocabulary_id_fkey" FOREIGN KEY ("vocabulary_id") REFERENCES "vocabularies"("id") ON DELETE SET NULL ON UPDATE CASCADE;
