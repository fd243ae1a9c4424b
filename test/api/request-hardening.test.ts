import { deflateSync } from 'node:zlib';
import { getNamedType, type GraphQLObjectType, isObjectType, isScalarType, isEnumType, Kind, type OperationDefinitionNode, parse } from 'graphql';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { operationCost } from '../../src/api/plugins/query-cost.ts';
import { COST_WEIGHTS } from '../../src/api/server.ts';
import { createLogger } from '../../src/core/log.ts';
import { databaseMode } from '../support/database.ts';
import { errorCodes, gql, startTestApp, type TestApp } from '../support/app.ts';
import { type AnyField, chainTo, requiredArgs, schema, wrapInChain } from '../support/schema.ts';
import { createTenantWithKeys, type TestTenant } from '../support/tenants.ts';

const TAG_IMAGE = 'mutation($v: ID!, $b: String!) { tagImage(vocabularyId: $v, image: { base64: $b }) { image { format width height } } }';

/** A complete, valid 8-bit grey PNG of one colour, built by hand (cheap at any size). */
function greyPng(width: number, height: number): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const head = Buffer.alloc(8);
    head.writeUInt32BE(data.length, 0);
    head.write(type, 4, 'latin1');
    let c = ~0;
    for (const b of Buffer.concat([head.subarray(4), data])) {
      c ^= b;
      for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
    }
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(~c >>> 0);
    return Buffer.concat([head, data, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 0, 0, 0, 0], 8); // 8-bit grey
  const rows = Buffer.alloc(height * (1 + width), 0x80);
  for (let y = 0; y < height; y++) rows[y * (1 + width)] = 0; // filter byte: none
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(rows)), chunk('IEND', Buffer.alloc(0))]);
}

const solid = (width: number, height: number) => sharp({ create: { width, height, channels: 3, background: { r: 90, g: 140, b: 60 } } });

/** Every scalar field of `type`, and of its object fields one level down (connections left out). */
function fullSelection(type: GraphQLObjectType, levels = 1): string {
  const parts: string[] = [];
  for (const f of Object.values(type.getFields())) {
    const named = getNamedType(f.type);
    if (isScalarType(named) || isEnumType(named)) parts.push(f.name);
    else if (isObjectType(named) && levels > 0 && !f.args.some((a) => a.name === 'first')) parts.push(`${f.name} { ${fullSelection(named, levels - 1)} }`);
  }
  return parts.join(' ');
}

/** Each connection field of the schema, asked for `first` items with every field of its nodes. */
function connectionQueries(first: number): { name: string; query: string }[] {
  const out: { name: string; query: string }[] = [];
  for (const type of Object.values(schema.getTypeMap())) {
    if (!isObjectType(type) || type.name.startsWith('__')) continue;
    for (const field of Object.values(type.getFields()) as AnyField[]) {
      if (!field.args.some((a) => a.name === 'first')) continue;
      const connection = getNamedType(field.type) as GraphQLObjectType;
      if (!connection.getFields().edges) continue; // a `first` that is not a page (searchImages' hits)
      const node = getNamedType(connection.getFields().edges!.type) as GraphQLObjectType;
      const nodeType = getNamedType(node.getFields().node!.type) as GraphQLObjectType;
      const args = [`first: ${first}`, ...requiredArgs(field, ['first'])].join(', ');
      const page = `${field.name}(${args}) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node { ${fullSelection(nodeType)} } } }`;
      const { operation, fields } = chainTo(type);
      out.push({ name: `${type.name}.${field.name}`, query: `${operation} { ${wrapInChain(fields, page)} }` });
    }
  }
  return out;
}

/** What the server's cost, weighted as the server weighs, makes of a query. */
function costOf(query: string, variables: Record<string, unknown> = {}): number {
  const document = parse(query);
  const operation = document.definitions.find((d): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION)!;
  return operationCost(schema, document, operation, variables, COST_WEIGHTS);
}

describe(`requests at the edge of the limits (${databaseMode} database)`, () => {
  let t: TestApp;
  let tenant: TestTenant;
  let vocabId: string;
  const rawLines: string[] = [];
  const logLines: Record<string, any>[] = [];

  beforeAll(async () => {
    const log = createLogger('warn', {
      write: (line: string) => {
        rawLines.push(line);
        logLines.push(JSON.parse(line));
      },
    });
    t = await startTestApp({}, { log });
    tenant = await createTenantWithKeys(t.url, 'Edges');
    vocabId = (await gql(t.url, 'mutation { createVocabulary(input: { name: "Edges" }) { id } }', undefined, tenant.adminKey)).data!.createVocabulary.id;
    const add = await gql(t.url, 'mutation($v: ID!) { addTags(vocabularyId: $v, tags: [{ name: "lawn" }, { name: "sky" }]) { results { ok } } }', { v: vocabId }, tenant.adminKey);
    expect(add.data!.addTags.results.every((r: { ok: boolean }) => r.ok)).toBe(true);
  });
  afterAll(() => t?.stop());

  const tag = (bytes: Buffer) => gql(t.url, TAG_IMAGE, { v: vocabId, b: bytes.toString('base64') }, tenant.clientKey);

  it('refuses images over 20,000 px a side, wide or tall, whatever the pixel count', async () => {
    const over = {
      'PNG 20,001×1': await solid(20_001, 1).png().toBuffer(),
      'PNG 1×20,001': await solid(1, 20_001).png().toBuffer(),
      'PNG 40,000×1,000': greyPng(40_000, 1_000),
      'PNG 1×30,000': greyPng(1, 30_000),
      'JPEG 20,001×1': await solid(20_001, 1).jpeg().toBuffer(),
      'GIF 1×20,001': await solid(1, 20_001).gif().toBuffer(),
      'TIFF 20,001×2': await solid(20_001, 2).tiff().toBuffer(),
    };
    for (const [what, bytes] of Object.entries(over)) {
      const r = await tag(bytes);
      expect(errorCodes(r), what).toEqual(['IMAGE_TOO_LARGE']);
      expect(r.errors![0]!.message, what).toMatch(/20000 pixels/);
    }
    const edge = await tag(greyPng(20_000, 1));
    expect(edge.errors).toBeUndefined();
    expect(edge.data!.tagImage.image).toEqual({ format: 'png', width: 20_000, height: 1 });
  });

  it('answers a selection 10,000 levels deep with BAD_USER_INPUT "too deep", by POST, GET and multipart', async () => {
    const deep = (levels: number) => `{ ${'vocabularies { '.repeat(levels)}id${' }'.repeat(levels)} }`;
    const post = await gql(t.url, deep(10_000), undefined, tenant.adminKey);
    expect(post.status).toBe(400);
    expect(errorCodes(post)).toEqual(['BAD_USER_INPUT']);
    expect(post.errors![0]!.message).toMatch(/too deep/);

    const get = await fetch(`${t.url}/graphql?query=${encodeURIComponent(`{${'a{'.repeat(1_000)}b${'}'.repeat(1_000)}}`)}`, {
      headers: { authorization: `Bearer ${tenant.adminKey}`, 'apollo-require-preflight': 'true' },
    });
    expect(get.status).toBe(400);
    const getBody = (await get.json()) as { errors: { message: string; extensions: { code: string } }[] };
    expect(getBody.errors[0]!).toMatchObject({ extensions: { code: 'BAD_USER_INPUT' } });
    expect(getBody.errors[0]!.message).toMatch(/too deep/);

    const form = new FormData();
    form.append('operations', JSON.stringify({ query: deep(10_000), variables: {} }));
    form.append('map', '{}');
    const multipart = await fetch(`${t.url}/graphql`, { method: 'POST', body: form, headers: { authorization: `Bearer ${tenant.adminKey}`, 'apollo-require-preflight': 'true' } });
    expect(multipart.status).toBe(400);
    expect(((await multipart.json()) as { errors: { message: string }[] }).errors[0]!.message).toMatch(/too deep/);
  });

  it('counts only brackets of the document: strings, block strings and comments may hold any', async () => {
    const braces = '{'.repeat(500);
    const r = await gql(t.url, `query { # ${braces}\n vocabulary(id: "${braces}") { id } d: vocabulary(id: """${braces}\\""" ${braces}""") { id } }`, undefined, tenant.adminKey);
    expect([...new Set(errorCodes(r))]).toEqual(['NOT_FOUND']);
    // within the bound, the parser and the validation answer as they always do
    const nestedList = await gql(t.url, `{ vocabulary(id: ${'['.repeat(100)}"x"${']'.repeat(100)}) { id } }`, undefined, tenant.adminKey);
    expect(errorCodes(nestedList)).toEqual(['BAD_USER_INPUT']);
    expect(nestedList.errors![0]!.message).not.toMatch(/too deep/);
  });

  it('prices a page of the documented size (500) with every field of its nodes within the cost limit, for every connection', async () => {
    const queries = connectionQueries(500);
    expect(queries.map((q) => q.name).sort()).toEqual(['DescriptionJob.items', 'ImportJob.items', 'Query.images', 'Query.tenants', 'Query.vocabularies', 'Vocabulary.tags']);
    for (const { name, query } of queries) {
      expect(costOf(query), name).toBeLessThanOrEqual(25_000);
      const r = await gql(t.url, query, undefined, tenant.adminKey);
      expect(r.status, name).not.toBe(400);
      expect(r.errors?.filter((e) => /cost/i.test(e.message)) ?? [], name).toEqual([]);
    }
    // the README's figure for a full page of tags
    const tags = queries.find((q) => q.name === 'Vocabulary.tags')!.query;
    expect(costOf(tags)).toBeGreaterThan(12_000);
    expect(costOf(tags)).toBeLessThan(14_000);
    // a page of pages multiplies: refused
    const nested = await gql(t.url, '{ vocabularies(first: 500) { edges { node { tags(first: 500) { edges { node { id name } } } } } } }', undefined, tenant.adminKey);
    expect(nested.status).toBe(400);
    expect(errorCodes(nested)).toEqual(['BAD_USER_INPUT']);
    expect(nested.errors![0]!.message).toMatch(/cost limit of 25000/);
  });

  it('prices page sizes given in variables or left to their defaults as the resolvers will read them', async () => {
    const literal = '{ vocabularies(first: 500) { edges { node { tags(first: 500) { edges { node { id name } } } } } } }';
    const byVariables = 'query($a: Int, $b: Int = 500) { vocabularies(first: $a) { edges { node { tags(first: $b) { edges { node { id name } } } } } } }';
    const byDefaults = '{ vocabularies { edges { node { tags { edges { node { id name } } } } } } }';
    expect(costOf(byVariables, { a: 500 })).toBe(costOf(literal));
    // the schema's default page (50) where nothing is given
    expect(costOf(byDefaults)).toBe(costOf('{ vocabularies(first: 50) { edges { node { tags(first: 50) { edges { node { id name } } } } } } }'));
    expect(costOf(byDefaults)).toBeGreaterThan(2 * 50 * 50);
    // fragments and inline fragments count what they select, each spread once more
    const viaFragment = 'query($n: Int) { vocabularies(first: $n) { ...V } } fragment V on VocabularyConnection { edges { node { ... on Vocabulary { tags(first: $n) { edges { node { id name } } } } } } }';
    expect(costOf(viaFragment, { n: 500 })).toBe(costOf(literal));
    for (const [query, variables] of [[byVariables, { a: 500 }], [viaFragment, { n: 500 }]] as const) {
      const r = await gql(t.url, query, variables, tenant.adminKey);
      expect(r.status).toBe(400);
      expect(errorCodes(r)).toEqual(['BAD_USER_INPUT']);
      expect(r.errors![0]!.message).toMatch(/cost limit of 25000 exceeded/);
    }
    // the same query with small pages passes
    const small = await gql(t.url, byVariables, { a: 5, b: 5 }, tenant.adminKey);
    expect(small.errors).toBeUndefined();
  });

  it('tags as many images as a request may carry without a MaxListenersExceededWarning', async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    try {
      const images = await Promise.all(Array.from({ length: 16 }, (_, i) => solid(64 + i, 48).jpeg().toBuffer()));
      const r = await gql(
        t.url,
        'mutation($v: ID!, $images: [ImageInput!]!) { tagImages(vocabularyId: $v, images: $images) { index error { code } } }',
        { v: vocabId, images: images.map((b) => ({ base64: b.toString('base64') })) },
        tenant.clientKey,
      );
      expect(r.errors).toBeUndefined();
      expect(r.data!.tagImages.every((o: { error: unknown }) => o.error === null)).toBe(true);
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      process.off('warning', onWarning);
    }
    expect(warnings.filter((w) => w.name === 'MaxListenersExceededWarning')).toEqual([]);
  });

  it('logs unexpected errors with the request id, from the resolver and from the services', async () => {
    const post = (query: string, variables: Record<string, unknown>, requestId: string) =>
      fetch(`${t.url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${tenant.clientKey}`, 'x-request-id': requestId },
        body: JSON.stringify({ query, variables }),
      }).then(async (res) => ({ status: res.status, body: (await res.json()) as any }));

    const health = t.app.services.health;
    const check = health.check;
    health.check = async () => {
      throw new Error('health exploded');
    };
    try {
      const r = await post('{ health { status } }', {}, 'trace-resolver-1');
      expect(r.body.errors[0]).toMatchObject({ message: 'Internal server error', extensions: { code: 'INTERNAL_SERVER_ERROR' } });
    } finally {
      health.check = check;
    }
    const fromResolver = logLines.find((l) => l.err?.message === 'health exploded');
    expect(fromResolver).toMatchObject({ level: 50, requestId: 'trace-resolver-1' });

    const engine = t.app.services.engine as unknown as { scoreImages: (...args: unknown[]) => Promise<unknown> };
    const scoreImages = engine.scoreImages;
    engine.scoreImages = async () => {
      throw new Error('engine exploded');
    };
    try {
      const jpeg = await solid(32, 32).jpeg().toBuffer();
      const r = await post('mutation($v: ID!, $b: String!) { tagImages(vocabularyId: $v, images: [{ base64: $b }]) { error { code } } }', { v: vocabId, b: jpeg.toString('base64') }, 'trace-service-2');
      expect(r.body.data.tagImages[0].error.code).toBe('INTERNAL_SERVER_ERROR');
    } finally {
      engine.scoreImages = scoreImages;
    }
    const fromService = logLines.find((l) => l.err?.message === 'engine exploded');
    expect(fromService).toMatchObject({ level: 50, requestId: 'trace-service-2' });
    // named once per line
    expect(rawLines.every((line) => line.split('"requestId"').length <= 2)).toBe(true);
  });
});
