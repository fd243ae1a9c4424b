import { randomBytes } from 'node:crypto';
import type { PrismaClient } from '../db/client.ts';
import { translateDbError } from '../db/client.ts';
import type { Tenant } from '../generated/prisma/client.ts';
import { badInput } from '../core/errors.ts';
import { pageById, type Page } from '../core/paging.ts';

const SLUG = /^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){1,62}$/;

export function slugify(name: string): string {
  return name
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 63)
    .replace(/-+$/, '');
}

/** Tenants are managed by the platform admin only; callers check that. */
export class TenantService {
  constructor(private readonly prisma: PrismaClient) {}

  async create(input: { name: string; slug?: string | null }): Promise<Tenant> {
    const name = input.name.normalize('NFC').trim().replace(/\s+/g, ' ');
    if (name.length < 1 || name.length > 200) throw badInput('name must be 1 to 200 characters', { field: 'name' });
    // Names with too few Latin letters or digits ("A", "日本") get a generated handle.
    const derived = slugify(name);
    const slug = input.slug ?? (derived.length >= 2 ? derived : `tenant-${randomBytes(4).toString('hex')}`);
    if (!SLUG.test(slug)) {
      throw badInput('slug must be 2 to 63 lower-case letters, digits or single dashes', { field: 'slug' });
    }
    return this.prisma.tenant.create({ data: { name, slug } }).catch(translateDbError);
  }

  async list(page: { first: number; after?: string | null }): Promise<Page<Tenant>> {
    return pageById(page, {
      exists: (id) => this.prisma.tenant.findUnique({ where: { id }, select: { id: true } }),
      rows: (window) => this.prisma.tenant.findMany({ orderBy: [{ createdAt: 'desc' }, { id: 'desc' }], ...window }),
      count: () => this.prisma.tenant.count(),
    }).catch(translateDbError);
  }

  get(id: string): Promise<Tenant | null> {
    return this.prisma.tenant.findUnique({ where: { id } }).catch(translateDbError);
  }
}
