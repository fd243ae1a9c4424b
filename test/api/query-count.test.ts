import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseMode } from '../support/database.ts';
import { gql, startTestApp, type TestApp } from '../support/app.ts';
import { createTenantWithKeys, type TestTenant } from '../support/tenants.ts';

/** Counts SQL statements sent by every pg client of this process (the app runs in-process). */
function countQueries() {
  const original = pg.Client.prototype.query;
  let count = 0;
  pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
    count++;
    return (original as (...a: unknown[]) => unknown).apply(this, args);
  } as typeof original;
  return { get: () => count, restore: () => void (pg.Client.prototype.query = original) };
}

const PAGE = `query($v: ID!, $n: Int!) {
  vocabulary(id: $v) { tags(first: $n) { edges { node { name aliases names { language name } descriptions { text source } } } } }
}`;

describe(`batched loading (${databaseMode} database)`, () => {
  let t: TestApp;
  let tenant: TestTenant;
  let vocabId: string;

  beforeAll(async () => {
    // No background worker: its polling would add statements to the count.
    t = await startTestApp({ OMNITAG_DESCRIPTION_WORKER: 'false', OMNITAG_LIBRARY_WORKER: 'false' });
    tenant = await createTenantWithKeys(t.url, 'Loader');
    vocabId = (await gql(t.url, 'mutation { createVocabulary(input: { name: "Big" }) { id } }', {}, tenant.adminKey)).data!.createVocabulary.id;
    const tags = Array.from({ length: 120 }, (_, i) => ({ name: `tag ${i}`, aliases: [`alias ${i}`], descriptions: [`a photo of thing ${i}`, `thing ${i} up close`] }));
    const r = await gql(t.url, 'mutation($v: ID!, $t: [TagInput!]!) { addTags(vocabularyId: $v, tags: $t) { results { ok } } }', { v: vocabId, t: tags }, tenant.adminKey);
    expect(r.data!.addTags.results.every((x: any) => x.ok)).toBe(true);
  });
  afterAll(() => t?.stop());

  it('reads a page of 100 tags with their descriptions in as many statements as a page of 5', async () => {
    const counter = countQueries();
    try {
      const measure = async (n: number) => {
        const before = counter.get();
        const r = await gql(t.url, PAGE, { v: vocabId, n }, tenant.clientKey);
        expect(r.errors).toBeUndefined();
        expect(r.data!.vocabulary.tags.edges).toHaveLength(n);
        expect(r.data!.vocabulary.tags.edges.every((e: any) => e.node.descriptions.length === 2)).toBe(true);
        return counter.get() - before;
      };
      await measure(5); // warm-up: the key's last-used write happens once a minute at most
      const small = await measure(5);
      const large = await measure(100);
      expect(large).toBe(small);
      expect(large).toBeLessThan(15);
    } finally {
      counter.restore();
    }
  });

  it('reads several vocabularies named in one query in as many statements as one', async () => {
    const other = (await gql(t.url, 'mutation { createVocabulary(input: { name: "Small" }) { id } }', {}, tenant.adminKey)).data!.createVocabulary.id;
    const counter = countQueries();
    try {
      const measure = async (query: string, expected: Record<string, unknown>) => {
        const before = counter.get();
        const r = await gql(t.url, query, query.includes('$b') ? { a: vocabId, b: other } : { a: vocabId }, tenant.clientKey);
        expect(r.errors).toBeUndefined();
        expect(r.data).toEqual(expected);
        return counter.get() - before;
      };
      const one = await measure('query($a: ID!) { a: vocabulary(id: $a) { name } }', { a: { name: 'Big' } });
      const two = await measure('query($a: ID!, $b: ID!) { a: vocabulary(id: $a) { name } b: vocabulary(id: $b) { name } }', { a: { name: 'Big' }, b: { name: 'Small' } });
      expect(two).toBe(one);
    } finally {
      counter.restore();
    }
  });
});
