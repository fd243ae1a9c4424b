/**
 * How the vocabulary repositories reach the database: one statement at a time on the Prisma
 * client, or one interactive transaction. Either way errors leave as AppErrors where a caller
 * can act on them (conflict, not found, database unavailable).
 */
import { translateDbError, type PrismaClient } from '../../db/client.ts';
import type { Prisma } from '../../generated/prisma/client.ts';

/** The Prisma client or one of its transactions: repositories work on either. */
export type Db = Prisma.TransactionClient;

/** Interactive transactions wait for a connection (the embedded database has one) and may be long (seeding). */
const TX_OPTIONS = { maxWait: 30_000, timeout: 120_000 } as const;

export function inTransaction<T>(prisma: PrismaClient, fn: (tx: Db) => Promise<T>): Promise<T> {
  return translated(prisma.$transaction(fn, TX_OPTIONS));
}

/** AppErrors pass through translateDbError unchanged; the driver's become ours. */
export function translated<T>(promise: Promise<T>): Promise<T> {
  return promise.catch(translateDbError);
}
