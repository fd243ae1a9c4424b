-- CreateTable
CREATE TABLE "image_feedback" (
    "tenant_id" UUID NOT NULL,
    "image_id" UUID NOT NULL,
    "tag_id" UUID NOT NULL,
    "vocabulary_id" UUID NOT NULL,
    "present" BOOLEAN NOT NULL,
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "image_feedback_pkey" PRIMARY KEY ("image_id","tag_id")
);

-- CreateTable
CREATE TABLE "threshold_calibrations" (
    "id" UUID NOT NULL,
    "tenant_id" UUID NOT NULL,
    "vocabulary_id" UUID NOT NULL,
    "target" TEXT NOT NULL,
    "precision" DOUBLE PRECISION,
    "min_positives" INTEGER NOT NULL,
    "feedback" INTEGER NOT NULL,
    "changed" INTEGER NOT NULL,
    "revision" INTEGER NOT NULL,
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "threshold_calibrations_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "image_feedback_tenant_id_vocabulary_id_tag_id_idx" ON "image_feedback"("tenant_id", "vocabulary_id", "tag_id");

-- CreateIndex
CREATE INDEX "threshold_calibrations_tenant_id_vocabulary_id_created_at_idx" ON "threshold_calibrations"("tenant_id", "vocabulary_id", "created_at" DESC);

-- AddForeignKey
ALTER TABLE "image_feedback" ADD CONSTRAINT "image_feedback_tenant_id_image_id_fkey" FOREIGN KEY ("tenant_id", "image_id") REFERENCES "library_images"("tenant_id", "id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "image_feedback" ADD CONSTRAINT "image_feedback_tenant_id_tag_id_fkey" FOREIGN KEY ("tenant_id", "tag_id") REFERENCES "tags"("tenant_id", "id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "image_feedback" ADD CONSTRAINT "image_feedback_tenant_id_vocabulary_id_fkey" FOREIGN KEY ("tenant_id", "vocabulary_id") REFERENCES "vocabularies"("tenant_id", "id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "threshold_calibrations" ADD CONSTRAINT "threshold_calibrations_tenant_id_vocabulary_id_fkey" FOREIGN KEY ("tenant_id", "vocabulary_id") REFERENCES "vocabularies"("tenant_id", "id") ON DELETE CASCADE ON UPDATE CASCADE;
