/** Tests send bursts far over any tenant's default limits: none unless a test sets them. */
export const NO_DEFAULT_LIMITS: Readonly<Record<string, string>> = Object.fromEntries(
  ['REQUESTS_PER_SECOND', 'IMAGES_PER_MINUTE', 'IMAGES_PER_DAY', 'MAX_VOCABULARIES', 'MAX_TAGS', 'LLM_GENERATIONS_PER_DAY', 'MAX_STORED_IMAGES'].map((n) => [`OMNITAG_DEFAULT_${n}`, '0']),
);
