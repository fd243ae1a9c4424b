/**
 * The `text_embeddings` table: content-addressed vectors keyed by (text encoder, SHA-256 of the
 * text), shared by every tenant on purpose (it holds no text and no tenant). Raw pg on the
 * shared pool, not Prisma: bytea rows in the thousands per compile, and Prisma measured 1.3×
 * slower on these lookups and 3× on these inserts (see README).
 */
import os from 'node:os';
import type pg from 'pg';
import { translateDbError } from '../../db/client.ts';

const LITTLE_ENDIAN = os.endianness() === 'LE';

export class EmbeddingTable {
  constructor(private readonly pool: pg.Pool) {}

  /** The stored vectors among `hashes`; rows of another dimension (damaged) are left out, to be computed again. */
  async find(encoderId: string, dim: number, hashes: readonly string[]): Promise<Map<string, Float32Array>> {
    const { rows } = await this.pool
      .query<{ text_hash: string; vector: Buffer; dim: number }>('SELECT text_hash, vector, dim FROM text_embeddings WHERE encoder_id = $1 AND text_hash = ANY($2::text[])', [
        encoderId,
        hashes,
      ])
      .catch(translateDbError);
    const found = new Map<string, Float32Array>();
    for (const row of rows) {
      if (row.dim !== dim || row.vector.byteLength !== dim * 4) continue;
      found.set(row.text_hash, vectorFromBytes(row.vector));
    }
    return found;
  }

  /** Stores vectors; rows another writer stored first are kept. */
  async store(encoderId: string, dim: number, hashes: readonly string[], vectors: readonly Float32Array[]): Promise<void> {
    await this.pool
      .query(
        `INSERT INTO text_embeddings (encoder_id, text_hash, dim, vector)
         SELECT $1, h, $2, v FROM unnest($3::text[], $4::bytea[]) AS x(h, v)
         ON CONFLICT DO NOTHING`,
        [encoderId, dim, hashes, vectors.map(vectorToBytes)],
      )
      .catch(translateDbError);
  }
}

/** Little-endian float32 bytes, as stored in `text_embeddings.vector`. */
function vectorToBytes(v: Float32Array): Buffer {
  const bytes = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  return LITTLE_ENDIAN ? bytes : Buffer.from(bytes).swap32();
}

function vectorFromBytes(bytes: Uint8Array): Float32Array {
  const out = new Float32Array(bytes.byteLength / 4); // an aligned copy of its own
  const view = new Uint8Array(out.buffer);
  view.set(bytes);
  if (!LITTLE_ENDIAN) Buffer.from(out.buffer).swap32();
  return out;
}
