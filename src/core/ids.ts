const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Ids that are not UUIDs cannot exist: callers answer NOT_FOUND without asking the database. */
export const isUuid = (id: unknown): id is string => typeof id === 'string' && UUID.test(id);
