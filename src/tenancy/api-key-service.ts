import type { PrismaClient } from '../db/client.ts';
import { translateDbError } from '../db/client.ts';
import type { ApiKey } from '../generated/prisma/client.ts';
import { badInput, notFound } from '../core/errors.ts';
import { generateApiKey } from './api-keys.ts';
import type { TenantRole } from './principal.ts';

/** Keys of one tenant. Every method is scoped by the tenant id it is given. */
export class ApiKeyService {
  constructor(
    private readonly prisma: PrismaClient,
    /** Told when a key is revoked (the authenticator drops it from its cache). */
    private readonly onRevoked: (keyId: string) => void = () => {},
  ) {}

  /** Returns the stored key and its secret; the secret is never stored or shown again. */
  async create(tenantId: string, input: { name: string; role: TenantRole }): Promise<{ apiKey: ApiKey; secret: string }> {
    const name = input.name.normalize('NFC').trim();
    if (name.length < 1 || name.length > 100) throw badInput('key name must be 1 to 100 characters', { field: 'name' });
    const tenant = await this.prisma.tenant.findUnique({ where: { id: tenantId }, select: { id: true } }).catch(translateDbError);
    if (!tenant) throw notFound('tenant');
    const key = generateApiKey();
    const apiKey = await this.prisma.apiKey
      .create({ data: { tenantId, name, role: input.role, prefix: key.prefix, hash: key.hash } })
      .catch(translateDbError);
    return { apiKey, secret: key.key };
  }

  list(tenantId: string): Promise<ApiKey[]> {
    return this.prisma.apiKey.findMany({ where: { tenantId }, orderBy: [{ createdAt: 'desc' }, { id: 'desc' }] }).catch(translateDbError);
  }

  /** Revoking twice keeps the first revocation time. */
  async revoke(tenantId: string, id: string): Promise<ApiKey> {
    const key = await this.prisma.apiKey.findFirst({ where: { id, tenantId } }).catch(translateDbError);
    if (!key) throw notFound('API key');
    if (key.revokedAt) return key;
    const revoked = await this.prisma.apiKey.update({ where: { id }, data: { revokedAt: new Date() } }).catch(translateDbError);
    this.onRevoked(id);
    return revoked;
  }

  getPrefix(tenantId: string, id: string): Promise<string | undefined> {
    return this.prisma.apiKey
      .findFirst({ where: { id, tenantId }, select: { prefix: true } })
      .then((k) => k?.prefix)
      .catch(translateDbError);
  }
}
