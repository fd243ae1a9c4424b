-- AlterTable
ALTER TABLE "tagging_runs" ADD COLUMN     "error_codes" JSONB,
ADD COLUMN     "tags_scored" INTEGER NOT NULL DEFAULT 0;

-- CreateTable
CREATE TABLE "tenant_limits" (
    "tenant_id" UUID NOT NULL,
    "requests_per_second" INTEGER,
    "images_per_minute" INTEGER,
    "images_per_day" INTEGER,
    "max_vocabularies" INTEGER,
    "max_tags" INTEGER,
    "llm_generations_per_day" INTEGER,
    "updated_at" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "tenant_limits_pkey" PRIMARY KEY ("tenant_id")
);

-- CreateTable
CREATE TABLE "rate_limit_counters" (
    "key" VARCHAR(255) NOT NULL,
    "points" INTEGER NOT NULL DEFAULT 0,
    "expire" BIGINT,

    CONSTRAINT "rate_limit_counters_pkey" PRIMARY KEY ("key")
);

-- AddForeignKey
ALTER TABLE "tenant_limits" ADD CONSTRAINT "tenant_limits_tenant_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id") ON DELETE CASCADE ON UPDATE CASCADE;
