-- A label-bank compile reads a vocabulary's tags, then their names and descriptions by joining on
-- the vocabulary. Without these, the planner took every vocabulary for a handful of rows (it
-- multiplied the selectivities of tenant_id and vocabulary_id, which are not independent) and
-- probed tag_names once per tag in tag-id order: 132 ms instead of 11 ms for a seeded vocabulary
-- among 1,000 tenants.

-- CreateIndex
CREATE INDEX "tag_names_tenant_id_tag_id_idx" ON "tag_names"("tenant_id", "tag_id");

-- A vocabulary belongs to one tenant: tell the planner so.
CREATE STATISTICS IF NOT EXISTS "tags_tenant_id_vocabulary_id_stats" (dependencies, ndistinct) ON "tenant_id", "vocabulary_id" FROM "tags";
ANALYZE "tags";
