import { LRUCache } from 'lru-cache';
import type { PrismaClient } from '../db/client.ts';
import { translateDbError } from '../db/client.ts';
import { hashKey, looksLikeApiKey, secretEquals } from './api-keys.ts';
import { ANONYMOUS, type Principal, type TenantPrincipal, unauthenticated } from './principal.ts';

/** Writing last-used on every request would turn every read into a write. */
const LAST_USED_RESOLUTION_MS = 60_000;
/** Keys remembered at once; each entry is a few hundred bytes. */
const VERIFIED_KEYS_CACHED = 10_000;

export interface AuthenticatorOptions {
  /**
   * How long a verified key is trusted without asking the database again. Revoking through
   * this process takes effect at once; a revocation made by another replica within this time.
   */
  cacheTtlMs: number;
}

export class Authenticator {
  private readonly lastUsedWritten = new Map<string, number>();
  private readonly verified: LRUCache<string, TenantPrincipal> | undefined;
  /** Lookups in flight, by key hash. */
  private readonly lookups = new Map<string, Promise<TenantPrincipal>>();

  constructor(
    private readonly prisma: PrismaClient,
    private readonly platformAdminKey: string | undefined,
    options: AuthenticatorOptions,
  ) {
    const ttl = options.cacheTtlMs;
    this.verified = ttl > 0 ? new LRUCache({ max: VERIFIED_KEYS_CACHED, ttl }) : undefined;
  }

  /** Drops a key from the cache (called when it is revoked here). */
  forget(keyId: string): void {
    if (!this.verified) return;
    for (const [hash, p] of this.verified.entries()) if (p.keyId === keyId) this.verified.delete(hash);
  }

  /** Resolves an `Authorization` header. A key that is present but wrong is an error, not anonymous. */
  async authenticate(header: string | undefined): Promise<Principal> {
    if (!header) return ANONYMOUS;
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match) throw unauthenticated('malformed Authorization header: expected `Bearer <key>`');
    const key = match[1]!;
    if (this.platformAdminKey && secretEquals(key, this.platformAdminKey)) return { kind: 'platform-admin' };
    if (!looksLikeApiKey(key)) throw unauthenticated('invalid API key');
    const hash = hashKey(key);
    const cached = this.verified?.get(hash);
    if (cached) {
      this.touch(cached.keyId);
      return cached;
    }
    // Concurrent requests with the same key wait for one lookup, not one connection each.
    let lookup = this.lookups.get(hash);
    if (!lookup) {
      lookup = this.lookup(hash).finally(() => this.lookups.delete(hash));
      this.lookups.set(hash, lookup);
    }
    const principal = await lookup;
    this.touch(principal.keyId);
    return principal;
  }

  private async lookup(hash: string): Promise<TenantPrincipal> {
    const row = await this.prisma.apiKey
      .findUnique({ where: { hash }, select: { id: true, tenantId: true, role: true, revokedAt: true } })
      .catch(translateDbError);
    if (!row) throw unauthenticated('invalid API key');
    if (row.revokedAt) throw unauthenticated('this API key has been revoked');
    const principal: TenantPrincipal = { kind: 'tenant', tenantId: row.tenantId, role: row.role, keyId: row.id };
    this.verified?.set(hash, principal);
    return principal;
  }

  private touch(keyId: string): void {
    const now = Date.now();
    if (now - (this.lastUsedWritten.get(keyId) ?? 0) < LAST_USED_RESOLUTION_MS) return;
    this.lastUsedWritten.set(keyId, now);
    // Best effort and off the request path: a missed update only makes last-used older.
    void this.prisma.apiKey.update({ where: { id: keyId }, data: { lastUsedAt: new Date(now) } }).catch(() => {});
  }
}
