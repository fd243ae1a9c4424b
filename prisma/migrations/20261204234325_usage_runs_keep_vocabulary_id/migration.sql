-- DropForeignKey
ALTER TABLE "tagging_runs" DROP CONSTRAINT "tagging_runs_vocabulary_id_fkey";
