-- CreateEnum
CREATE TYPE "LibraryJobKind" AS ENUM ('IMPORT', 'RETAG');

-- CreateEnum
CREATE TYPE "LibraryItemState" AS ENUM ('PENDING', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED');

-- CreateTable
CREATE TABLE "library_jobs" (
    "id" UUID NOT NULL,
    "tenant_id" UUID NOT NULL,
    "vocabulary_id" UUID NOT NULL,
    "kind" "LibraryJobKind" NOT NULL,
    "state" "JobState" NOT NULL DEFAULT 'QUEUED',
    "active_retag" UUID,
    "target_revision" INTEGER,
    "total" INTEGER NOT NULL DEFAULT 0,
    "succeeded" INTEGER NOT NULL DEFAULT 0,
    "failed" INTEGER NOT NULL DEFAULT 0,
    "cancelled" INTEGER NOT NULL DEFAULT 0,
    "staged_bytes" BIGINT NOT NULL DEFAULT 0,
    "error" TEXT,
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMP(3) NOT NULL,
    "finished_at" TIMESTAMP(3),

    CONSTRAINT "library_jobs_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "library_job_items" (
    "id" UUID NOT NULL,
    "tenant_id" UUID NOT NULL,
    "job_id" UUID NOT NULL,
    "position" INTEGER NOT NULL,
    "state" "LibraryItemState" NOT NULL DEFAULT 'PENDING',
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "claim_token" UUID,
    "lease_expires_at" TIMESTAMP(3),
    "run_after" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "url" TEXT,
    "data" BYTEA,
    "byte_size" INTEGER NOT NULL DEFAULT 0,
    "external_id" TEXT,
    "image_id" UUID,
    "duplicate" BOOLEAN NOT NULL DEFAULT false,
    "error_code" TEXT,
    "error" TEXT,
    "updated_at" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "library_job_items_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "library_jobs_active_retag_key" ON "library_jobs"("active_retag");

-- CreateIndex
CREATE INDEX "library_jobs_tenant_id_created_at_idx" ON "library_jobs"("tenant_id", "created_at");

-- CreateIndex
CREATE UNIQUE INDEX "library_jobs_tenant_id_id_key" ON "library_jobs"("tenant_id", "id");

-- CreateIndex
CREATE INDEX "library_job_items_state_run_after_idx" ON "library_job_items"("state", "run_after");

-- CreateIndex
CREATE INDEX "library_job_items_tenant_id_job_id_position_idx" ON "library_job_items"("tenant_id", "job_id", "position");

-- CreateIndex
CREATE UNIQUE INDEX "library_job_items_job_id_position_key" ON "library_job_items"("job_id", "position");

-- AddForeignKey
ALTER TABLE "library_jobs" ADD CONSTRAINT "library_jobs_tenant_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "library_jobs" ADD CONSTRAINT "library_jobs_tenant_id_vocabulary_id_fkey" FOREIGN KEY ("tenant_id", "vocabulary_id") REFERENCES "vocabularies"("tenant_id", "id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "library_job_items" ADD CONSTRAINT "library_job_items_tenant_id_job_id_fkey" FOREIGN KEY ("tenant_id", "job_id") REFERENCES "library_jobs"("tenant_id", "id") ON DELETE CASCADE ON UPDATE CASCADE;
