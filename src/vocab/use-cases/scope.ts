import { notFound } from '../../core/errors.ts';
import { isUuid } from '../../core/ids.ts';

/** Tenant ids come from authentication; a malformed one can own nothing (NOT_FOUND, as for another tenant's object). */
export function checkTenant(tenantId: string): void {
  if (!isUuid(tenantId)) throw notFound('vocabulary');
}
