import { AppError, ErrorCode } from '../core/errors.ts';

export type TenantRole = 'ADMIN' | 'CLIENT';

/** Who is calling: resolved once per request from the bearer key. */
export type Principal =
  | { readonly kind: 'anonymous' }
  | { readonly kind: 'platform-admin' }
  | { readonly kind: 'tenant'; readonly tenantId: string; readonly role: TenantRole; readonly keyId: string };

export type TenantPrincipal = Extract<Principal, { kind: 'tenant' }>;

export const ANONYMOUS: Principal = Object.freeze({ kind: 'anonymous' });

export function requirePlatformAdmin(p: Principal): void {
  if (p.kind === 'anonymous') throw unauthenticated();
  if (p.kind !== 'platform-admin') throw new AppError(ErrorCode.FORBIDDEN, 'this operation needs the platform admin key');
}

/** The calling tenant; with `role: 'ADMIN'`, CLIENT keys are refused. */
export function requireTenant(p: Principal, role?: TenantRole): TenantPrincipal {
  if (p.kind === 'anonymous') throw unauthenticated();
  if (p.kind !== 'tenant') throw new AppError(ErrorCode.FORBIDDEN, 'this operation needs a tenant key');
  if (role === 'ADMIN' && p.role !== 'ADMIN') throw new AppError(ErrorCode.FORBIDDEN, 'this operation needs a tenant ADMIN key');
  return p;
}

export const unauthenticated = (message = 'send a valid key as `Authorization: Bearer <key>`') =>
  new AppError(ErrorCode.UNAUTHENTICATED, message);
