-- AlterTable
ALTER TABLE "description_job_items" ADD COLUMN     "llm_calls" INTEGER NOT NULL DEFAULT 0,
ADD COLUMN     "llm_tokens" INTEGER;
