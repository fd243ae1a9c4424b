import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  checkDescriptionText,
  checkLocalizedName,
  checkSearch,
  checkTagName,
  checkVocabularyName,
  MAX_SEARCH_LENGTH,
} from '../../src/vocab/use-cases/names.ts';
import { likeLiteral } from '../../src/vocab/repository/tags.ts';
import { databaseMode } from '../support/database.ts';
import { errorCodes, gql, startTestApp, type TestApp } from '../support/app.ts';
import { createTenantWithKeys, type TestTenant } from '../support/tenants.ts';

describe('search and text checks of the vocabulary services', () => {
  it('normalise and case-fold a search, refuse long and unstorable ones, and take blank as no filter', () => {
    expect(checkSearch('  Red\u00a0 PANDA ')).toEqual({ ok: true, key: 'red panda' });
    expect(checkSearch('   ')).toEqual({ ok: true, key: undefined });
    expect(checkSearch('x'.repeat(MAX_SEARCH_LENGTH)).ok).toBe(true);
    expect(checkSearch('𠀀'.repeat(MAX_SEARCH_LENGTH)).ok).toBe(true); // characters, not UTF-16 units
    for (const bad of ['x'.repeat(MAX_SEARCH_LENGTH + 1), 'y'.repeat(10_000_000), 'a\u0000', '\ud800', 42]) {
      expect(checkSearch(bad), String(bad).slice(0, 20)).toMatchObject({ ok: false, problem: { code: 'BAD_USER_INPUT' } });
    }
  });

  it('refuse NUL and unpaired surrogates in every kind of name and text, as the edge does', () => {
    for (const check of [checkTagName, checkLocalizedName, checkVocabularyName, checkDescriptionText, checkSearch]) {
      for (const bad of ['a\u0000b', 'a\ud800b', '\udfff']) {
        const r = check(bad);
        expect(r.ok, `${check.name}(${JSON.stringify(bad)})`).toBe(false);
      }
    }
  });

  it('escape LIKE wildcards and the escape character', () => {
    expect(likeLiteral('50%_off\\')).toBe('50\\%\\_off\\\\');
    expect(likeLiteral('plain')).toBe('plain');
  });
});

describe(`tag search over HTTP is literal and bounded (${databaseMode} database)`, () => {
  let t: TestApp;
  let tenant: TestTenant;
  let vocabId: string;

  const search = async (text: string) => {
    const r = await gql(
      t.url,
      'query($id: ID!, $s: String) { vocabulary(id: $id) { tags(first: 50, search: $s) { totalCount edges { node { name } } } } }',
      { id: vocabId, s: text },
      tenant.clientKey,
    );
    return r;
  };
  const names = async (text: string) => {
    const r = await search(text);
    expect(r.errors, text).toBeUndefined();
    return (r.data!.vocabulary.tags.edges as { node: { name: string } }[]).map((e) => e.node.name).sort();
  };

  beforeAll(async () => {
    t = await startTestApp();
    tenant = await createTenantWithKeys(t.url, 'Searcher');
    vocabId = (await gql(t.url, 'mutation { createVocabulary(input: { name: "Wildcards" }) { id } }', undefined, tenant.adminKey)).data!.createVocabulary.id;
    const add = await gql(
      t.url,
      `mutation($v: ID!) { addTags(vocabularyId: $v, tags: [
        { name: "snake_case" }, { name: "snakescase" }, { name: "100% cotton" }, { name: "1000 cotton" },
        { name: "plain", aliases: ["under_score alias"] }, { name: "another" }
      ]) { results { ok error { message } } } }`,
      { v: vocabId },
      tenant.adminKey,
    );
    expect(add.data!.addTags.results.map((r: { ok: boolean }) => r.ok)).toEqual([true, true, true, true, true, true]);
  });
  afterAll(() => t?.stop());

  it('matches % and _ as the characters they are, in names and aliases', async () => {
    expect(await names('_')).toEqual(['plain', 'snake_case']);
    expect(await names('%')).toEqual(['100% cotton']);
    expect(await names('e_c')).toEqual(['snake_case']);
    expect(await names('0% c')).toEqual(['100% cotton']);
    expect(await names('%%')).toEqual([]);
    expect(await names('\\')).toEqual([]);
    expect(await names('SNAKE')).toEqual(['snake_case', 'snakescase']);
    expect(await names('  ')).toHaveLength(6); // blank: no filter
  });

  it('bounds the length of a search', async () => {
    expect(await names('x'.repeat(MAX_SEARCH_LENGTH))).toEqual([]);
    for (const long of ['x'.repeat(MAX_SEARCH_LENGTH + 1), 'y'.repeat(1_000_000)]) {
      const r = await search(long);
      expect(errorCodes(r)).toEqual(['BAD_USER_INPUT']);
      expect(r.errors![0]!.extensions!.field).toBe('search');
      expect(r.errors![0]!.message).toMatch(new RegExp(`longer than ${MAX_SEARCH_LENGTH}`));
    }
  });
});
