import {
  getNamedType,
  getNullableType,
  type GraphQLArgument,
  type GraphQLInputType,
  type GraphQLObjectType,
  isInputObjectType,
  isListType,
  isObjectType,
  isScalarType,
} from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseMode } from '../support/database.ts';
import { errorCodes, gql, startTestApp, type TestApp } from '../support/app.ts';
import { type AnyField, chainTo, FILLER_ID, type InputPath, literal, requiredArgs, schema, valueOf, wrapInChain } from '../support/schema.ts';
import { createTenantWithKeys, type TestTenant } from '../support/tenants.ts';

/**
 * Every text a client can send, found in schema.graphql itself: each String or ID argument of
 * every field of every type, and each String or ID input field inside them (through lists and
 * nested input objects). A new argument or input field is covered without touching this file.
 */
interface TextPosition {
  owner: GraphQLObjectType;
  field: AnyField;
  arg: GraphQLArgument;
  /** Inside the argument's value: input field names and list indices. */
  inner: InputPath;
}

function* textPaths(type: GraphQLInputType, inner: InputPath, seen: ReadonlySet<string>): Generator<InputPath> {
  const t = getNullableType(type);
  if (isListType(t)) {
    yield* textPaths(t.ofType, [...inner, 0], seen);
  } else if (isInputObjectType(t)) {
    if (seen.has(t.name)) return;
    for (const f of Object.values(t.getFields())) yield* textPaths(f.type, [...inner, f.name], new Set([...seen, t.name]));
  } else if (isScalarType(t) && (t.name === 'String' || t.name === 'ID')) {
    yield inner;
  }
}

function textPositions(): TextPosition[] {
  const positions: TextPosition[] = [];
  for (const type of Object.values(schema.getTypeMap())) {
    if (!isObjectType(type) || type.name.startsWith('__')) continue;
    for (const field of Object.values(type.getFields())) {
      for (const arg of field.args) {
        for (const inner of textPaths(arg.type, [], new Set())) positions.push({ owner: type, field, arg, inner });
      }
    }
  }
  return positions;
}

const innerName = (inner: InputPath) => inner.map((p) => (typeof p === 'number' ? `[${p}]` : `.${p}`)).join('');

/**
 * One operation that sends `text` at the position, as a variable or written in the document;
 * and the `field` the answer should name.
 */
function operationFor(p: TextPosition, text: string, as: 'variable' | 'literal') {
  const { operation, fields } = chainTo(p.owner);
  const value = valueOf(p.arg.type, p.inner, text);
  const targetArg = as === 'variable' ? `${p.arg.name}: $v` : `${p.arg.name}: ${literal(value, p.arg.type)}`;
  const args = [targetArg, ...requiredArgs(p.field, [p.arg.name])];
  const selection = wrapInChain(fields, `${p.field.name}(${args.join(', ')})${isObjectType(getNamedType(p.field.type)) ? ' { __typename }' : ''}`);
  const header = as === 'variable' ? `${operation}($v: ${p.arg.type.toString()})` : operation;
  return {
    query: `${header} { ${selection} }`,
    variables: as === 'variable' ? { v: value } : undefined,
    field: as === 'variable' ? `$v${innerName(p.inner)}` : `${p.arg.name}${innerName(p.inner)}`,
  };
}

const positions = textPositions();

describe(`text inputs are checked at the edge (${databaseMode} database)`, () => {
  let t: TestApp;
  let tenant: TestTenant;

  beforeAll(async () => {
    t = await startTestApp();
    tenant = await createTenantWithKeys(t.url, 'Texts');
  });
  afterAll(() => t?.stop());

  it('finds the text arguments and input fields of the schema', () => {
    const names = positions.map((p) => `${p.owner.name}.${p.field.name}(${p.arg.name}${innerName(p.inner)})`);
    // a few that must be there, at every level: root arguments, nested input fields, list items, fields of other types
    for (const expected of [
      'Mutation.createTenant(input.name)',
      'Mutation.addTags(tags[0].names[0].name)',
      'Mutation.addTags(tags[0].aliases[0])',
      'Mutation.setTagDescriptions(descriptions[0])',
      'Mutation.tagImage(image.url)',
      'Mutation.tagImages(options.language)',
      'Query.vocabulary(id)',
      'Vocabulary.tags(search)',
      'DescriptionJob.items(after)',
    ]) {
      expect(names).toContain(expected);
    }
    expect(positions.length).toBeGreaterThan(30);
  });

  it('refuses a NUL in every text argument and input field, as a variable and written in the query', async () => {
    for (const p of positions) {
      for (const as of ['variable', 'literal'] as const) {
        const op = operationFor(p, 'a\u0000b', as);
        const r = await gql(t.url, op.query, op.variables, tenant.adminKey);
        const what = `${op.query} ${JSON.stringify(op.variables ?? {})}`;
        expect(r.status, what).toBe(400);
        expect(errorCodes(r), what).toEqual(['BAD_USER_INPUT']);
        expect(r.errors![0]!.extensions!.field, what).toBe(op.field);
        expect(r.errors![0]!.message, what).toMatch(/NUL/);
        expect(r.data ?? undefined, what).toBeUndefined();
      }
    }
  });

  it('refuses unpaired surrogates, which JSON can carry, in every text argument and input field', async () => {
    for (const p of positions) {
      for (const text of ['\ud800', 'ok\udc00', 'x\ud83dy']) {
        const op = operationFor(p, text, 'variable');
        const r = await gql(t.url, op.query, op.variables, tenant.adminKey);
        const what = `${op.query} ${JSON.stringify(text)}`;
        expect(errorCodes(r), what).toEqual(['BAD_USER_INPUT']);
        expect(r.errors![0]!.extensions!.field, what).toBe(op.field);
        expect(r.errors![0]!.message, what).toMatch(/surrogate/);
      }
    }
  });

  it('refuses a NUL in a variable default and names the first bad text of a list', async () => {
    const withDefault = await gql(t.url, 'query($s: String = "x\\u0000") { vocabulary(id: "x") { tags(search: $s) { totalCount } } }', undefined, tenant.adminKey);
    expect(errorCodes(withDefault)).toEqual(['BAD_USER_INPUT']);
    expect(withDefault.errors![0]!.extensions!.field).toBe('$s');
    const list = await gql(
      t.url,
      'mutation($v: ID!, $t: [TagInput!]!) { addTags(vocabularyId: $v, tags: $t) { results { ok } } }',
      { v: FILLER_ID, t: [{ name: 'fine' }, { name: 'fine too', aliases: ['ok', 'no\u0000'] }] },
      tenant.adminKey,
    );
    expect(errorCodes(list)).toEqual(['BAD_USER_INPUT']);
    expect(list.errors![0]!.extensions!.field).toBe('$t[1].aliases[1]');
  });

  it('lets every other text through: astral characters (surrogate pairs), controls the services judge, emoji', async () => {
    const v = await gql(t.url, 'mutation($n: String!) { createVocabulary(input: { name: $n }) { id name } }', { n: 'Tea 🍵 𝔘𝔫𝔦𝔠𝔬𝔡𝔢' }, tenant.adminKey);
    expect(v.errors).toBeUndefined();
    expect(v.data!.createVocabulary.name).toBe('Tea 🍵 𝔘𝔫𝔦𝔠𝔬𝔡𝔢');
    const id = v.data!.createVocabulary.id;
    const add = await gql(
      t.url,
      'mutation($v: ID!) { addTags(vocabularyId: $v, tags: [{ name: "𠀀 tag", descriptions: ["a \\ud83c\\udf75 cup"] }, { name: "bell\\u0007" }]) { results { ok error { code } tag { name descriptions { text } } } } }',
      { v: id },
      tenant.adminKey,
    );
    expect(add.errors).toBeUndefined();
    const [astral, bell] = add.data!.addTags.results;
    expect(astral.tag).toMatchObject({ name: '𠀀 tag', descriptions: [{ text: 'a 🍵 cup' }] });
    // other control characters reach the services, which refuse them item by item
    expect(bell).toMatchObject({ ok: false, error: { code: 'BAD_USER_INPUT' } });
  });
});
