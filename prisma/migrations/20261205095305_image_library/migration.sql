-- CreateEnum
CREATE TYPE "EncodingDtype" AS ENUM ('FLOAT16', 'FLOAT32');

-- AlterTable
ALTER TABLE "tagging_runs" ADD COLUMN     "stored_count" INTEGER NOT NULL DEFAULT 0;

-- AlterTable
ALTER TABLE "tenant_limits" ADD COLUMN     "max_stored_images" INTEGER;

-- CreateTable
CREATE TABLE "library_images" (
    "id" UUID NOT NULL,
    "tenant_id" UUID NOT NULL,
    "external_id" TEXT,
    "sha256" TEXT NOT NULL,
    "format" TEXT NOT NULL,
    "width" INTEGER NOT NULL,
    "height" INTEGER NOT NULL,
    "byte_size" INTEGER NOT NULL,
    "encoder_id" TEXT NOT NULL,
    "encoding_dtype" "EncodingDtype" NOT NULL,
    "encoding_tokens" INTEGER NOT NULL,
    "encoding_dim" INTEGER NOT NULL,
    "encoding" BYTEA NOT NULL,
    "thumbnail" BYTEA,
    "thumbnail_type" TEXT,
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "library_images_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "image_results" (
    "tenant_id" UUID NOT NULL,
    "image_id" UUID NOT NULL,
    "vocabulary_id" UUID NOT NULL,
    "revision" INTEGER NOT NULL,
    "score_floor" DOUBLE PRECISION NOT NULL,
    "updated_at" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "image_results_pkey" PRIMARY KEY ("image_id","vocabulary_id")
);

-- CreateTable
CREATE TABLE "image_tag_scores" (
    "tenant_id" UUID NOT NULL,
    "image_id" UUID NOT NULL,
    "vocabulary_id" UUID NOT NULL,
    "tag_id" UUID NOT NULL,
    "score" DOUBLE PRECISION NOT NULL,
    "logit" DOUBLE PRECISION NOT NULL,
    "passed" BOOLEAN NOT NULL,
    "revision" INTEGER NOT NULL,

    CONSTRAINT "image_tag_scores_pkey" PRIMARY KEY ("image_id","vocabulary_id","tag_id")
);

-- CreateIndex
CREATE INDEX "library_images_tenant_id_created_at_id_idx" ON "library_images"("tenant_id", "created_at" DESC, "id");

-- CreateIndex
CREATE UNIQUE INDEX "library_images_tenant_id_sha256_key" ON "library_images"("tenant_id", "sha256");

-- CreateIndex
CREATE UNIQUE INDEX "library_images_tenant_id_external_id_key" ON "library_images"("tenant_id", "external_id");

-- CreateIndex
CREATE UNIQUE INDEX "library_images_tenant_id_id_key" ON "library_images"("tenant_id", "id");

-- CreateIndex
CREATE INDEX "image_results_tenant_id_vocabulary_id_idx" ON "image_results"("tenant_id", "vocabulary_id");

-- CreateIndex
CREATE INDEX "image_tag_scores_tag_id_score_image_id_idx" ON "image_tag_scores"("tag_id", "score" DESC, "image_id");

-- AddForeignKey
ALTER TABLE "library_images" ADD CONSTRAINT "library_images_tenant_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "image_results" ADD CONSTRAINT "image_results_tenant_id_image_id_fkey" FOREIGN KEY ("tenant_id", "image_id") REFERENCES "library_images"("tenant_id", "id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "image_results" ADD CONSTRAINT "image_results_tenant_id_vocabulary_id_fkey" FOREIGN KEY ("tenant_id", "vocabulary_id") REFERENCES "vocabularies"("tenant_id", "id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "image_tag_scores" ADD CONSTRAINT "image_tag_scores_image_id_vocabulary_id_fkey" FOREIGN KEY ("image_id", "vocabulary_id") REFERENCES "image_results"("image_id", "vocabulary_id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "image_tag_scores" ADD CONSTRAINT "image_tag_scores_tenant_id_tag_id_fkey" FOREIGN KEY ("tenant_id", "tag_id") REFERENCES "tags"("tenant_id", "id") ON DELETE CASCADE ON UPDATE CASCADE;
