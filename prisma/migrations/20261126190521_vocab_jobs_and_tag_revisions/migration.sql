-- AlterTable
ALTER TABLE "description_job_items" ADD COLUMN     "claim_token" UUID,
ADD COLUMN     "lease_expires_at" TIMESTAMP(3),
ADD COLUMN     "run_after" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP;

-- AlterTable
ALTER TABLE "description_jobs" ADD COLUMN     "descriptions_per_tag" INTEGER NOT NULL DEFAULT 51,
ADD COLUMN     "model" TEXT;

-- AlterTable
ALTER TABLE "tags" ADD COLUMN     "revision" INTEGER NOT NULL DEFAULT 1,
ADD COLUMN     "use_builtin_descriptions" BOOLEAN NOT NULL DEFAULT true;

-- CreateIndex
CREATE INDEX "description_job_items_state_run_after_idx" ON "description_job_items"("state", "run_after");

-- CreateIndex
CREATE INDEX "tags_vocabulary_id_revision_idx" ON "tags"("vocabulary_id", "revision");
