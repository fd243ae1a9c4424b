-- DropIndex
DROP INDEX "tags_vocabulary_id_revision_idx";

-- CreateIndex
CREATE INDEX "tag_descriptions_tenant_id_tag_id_position_idx" ON "tag_descriptions"("tenant_id", "tag_id", "position");

-- CreateIndex
CREATE INDEX "tags_tenant_id_vocabulary_id_revision_idx" ON "tags"("tenant_id", "vocabulary_id", "revision");
