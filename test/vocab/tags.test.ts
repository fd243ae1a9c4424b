import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { VocabularyServices } from '../../src/vocab/index.ts';
import { templateDescriptions } from '../../src/vocab/generation/templates.ts';
import { descriptionsOf, setupVocabEnv, tagById, tagNamed, type VocabTestEnv } from './helpers.ts';

let env: VocabTestEnv;
let s: VocabularyServices;

beforeAll(async () => {
  env = await setupVocabEnv();
  s = await env.services({ vocab: { descriptionsPerTag: 8 } });
});
afterAll(() => env?.close());

describe('tags', () => {
  it('adds in bulk with normalised names and per-item errors, one revision per call', async () => {
    const v = await s.vocabularies.create(env.tenantA, { name: 'bulk' });
    const many = Array.from({ length: 300 }, (_, i) => ({ name: `thing ${i}` }));
    const first = await s.tags.add(env.tenantA, v.id, many);
    expect(first.results.every((r) => r.ok)).toBe(true);
    expect(first.revision).toBe(2);

    const { results, revision } = await s.tags.add(env.tenantA, v.id, [
      { name: '  Cafe\u0301  au   lait ', aliases: ['coffee with milk', 'CAFE\u0301 AU LAIT'], names: [{ language: 'FR', name: 'café au lait' }], threshold: 0.7 },
      { name: 'THING 7' }, // exists (case-insensitive)
      { name: 'coffee WITH milk' }, // an alias of item 0 in this request
      { name: 'Zebra' },
      { name: 'zebra' }, // duplicate of item 3
      { name: 'bad "quoted" name' },
      { name: '' },
      { name: 'x'.repeat(101) },
      { name: 'ok', threshold: 1.5 },
      { name: 'bell\u0007char' },
      { name: 'Ünïcödé 東京 3D' },
      { name: 'tv', names: [{ language: 'not a language', name: 'x' }] },
      { name: 'manual', descriptions: ['  a hand-written   description. '] },
    ]);
    expect(revision).toBe(3);
    const summary = results.map((r) => (r.ok ? 'ok' : r.error!.code));
    expect(summary).toEqual(['ok', 'CONFLICT', 'CONFLICT', 'ok', 'CONFLICT', 'BAD_USER_INPUT', 'BAD_USER_INPUT', 'BAD_USER_INPUT', 'BAD_USER_INPUT', 'BAD_USER_INPUT', 'ok', 'BAD_USER_INPUT', 'ok']);
    expect(results[1]!.error!.message).toBe('a tag named "thing 7" already exists');
    expect(results[4]!.error!.message).toMatch(/item 3/);
    const cafe = results[0]!.tag!;
    // NFC (e + combining acute → é), trimmed, inner spaces collapsed; the alias equal to the name is dropped
    expect(cafe).toMatchObject({ name: 'Café au lait', key: 'café au lait', threshold: 0.7, thresholdOverride: 0.7, aliases: ['coffee with milk'], names: [{ language: 'fr', name: 'café au lait' }], status: 'READY', builtin: false, revision: 3 });
    expect(results[9]!.tag).toBeUndefined(); // control characters never reach names
    expect(results[10]!.tag!.name).toBe('Ünïcödé 東京 3D');

    // template descriptions at once (descriptionsPerTag = 8 here), manual ones as given
    const d = await descriptionsOf(s, env.tenantA, cafe.id);
    expect(d.map((x) => x.text)).toEqual(templateDescriptions('Café au lait', 8));
    expect(new Set(d.map((x) => x.source))).toEqual(new Set(['TEMPLATE']));
    const manual = await descriptionsOf(s, env.tenantA, results[12]!.tag!.id);
    expect(manual.map((x) => [x.text, x.source])).toEqual([['a hand-written description.', 'MANUAL']]);

    // a request where nothing is stored makes no revision
    const none = await s.tags.add(env.tenantA, v.id, [{ name: 'zebra' }, { name: 'CAFÉ AU LAIT' }]);
    expect(none.revision).toBe(3);
    expect(none.results.map((r) => r.error?.code)).toEqual(['CONFLICT', 'CONFLICT']);
    const aliasClash = await s.tags.add(env.tenantA, v.id, [{ name: 'milky coffee', aliases: ['Coffee with Milk'] }]);
    expect(aliasClash.results[0]!.error!.message).toBe('"coffee with milk" is already an alias of the tag "Café au lait"');

    // listing by name with search over names and aliases
    const found = await s.tags.list(env.tenantA, v.id, { first: 10, search: 'MILK' });
    expect(found.nodes.map((t) => t.name)).toEqual(['Café au lait']);
    const page1 = await s.tags.list(env.tenantA, v.id, { first: 100 });
    const page2 = await s.tags.list(env.tenantA, v.id, { first: 500, after: page1.cursorOf(page1.nodes.at(-1)!) });
    expect(page1.totalCount).toBe(304);
    expect(page1.hasNextPage).toBe(true);
    expect(new Set([...page1.nodes, ...page2.nodes].map((t) => t.id)).size).toBe(304);
    expect(page2.hasNextPage).toBe(false);

    // a batch over the limit is refused as a whole
    await expect(s.tags.add(env.tenantA, v.id, Array.from({ length: 1001 }, (_, i) => ({ name: `n${i}` })))).rejects.toMatchObject({ code: 'BAD_USER_INPUT' });
    // another tenant's vocabulary is NOT_FOUND, even when every item is invalid
    await expect(s.tags.add(env.tenantB, v.id, [{ name: 'x' }])).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(s.tags.add(env.tenantB, v.id, [{ name: '' }])).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('updates names, thresholds, aliases, names in other languages and enabled state', async () => {
    const v = await s.vocabularies.create(env.tenantA, { name: 'edits' });
    const { results } = await s.tags.add(env.tenantA, v.id, [{ name: 'cat', aliases: ['kitty'] }, { name: 'dog' }]);
    const cat = results[0]!.tag!;
    const dog = results[1]!.tag!;

    const renamed = await s.tags.update(env.tenantA, cat.id, { name: 'Kitty' }); // its own alias becomes its name
    expect(renamed).toMatchObject({ name: 'Kitty', aliases: [], revision: 3 });
    // template descriptions follow the name
    expect((await descriptionsOf(s, env.tenantA, cat.id))[0]!.text).toBe('a photo of a Kitty.');

    await expect(s.tags.update(env.tenantA, dog.id, { name: 'KITTY' })).rejects.toMatchObject({ code: 'CONFLICT' });
    await expect(s.tags.update(env.tenantA, dog.id, { aliases: ['kitty'] })).rejects.toMatchObject({ code: 'CONFLICT' });
    await expect(s.tags.update(env.tenantA, dog.id, { threshold: 0 })).rejects.toMatchObject({ code: 'BAD_USER_INPUT' });

    const updated = await s.tags.update(env.tenantA, dog.id, { threshold: 0.42, aliases: ['hound', 'Puppy', 'puppy'], names: [{ language: 'de', name: 'Hund' }, { language: 'pt_BR', name: 'cachorro' }] });
    expect(updated).toMatchObject({ threshold: 0.42, aliases: ['hound', 'Puppy'], names: [{ language: 'de', name: 'Hund' }, { language: 'pt-br', name: 'cachorro' }], revision: 4 });
    // the same values again change nothing
    expect((await s.tags.update(env.tenantA, dog.id, { threshold: 0.42, aliases: ['Puppy', 'hound'] })).revision).toBe(4);
    const cleared = await s.tags.update(env.tenantA, dog.id, { threshold: null, enabled: false });
    expect(cleared).toMatchObject({ threshold: 0.5, thresholdOverride: null, enabled: false, revision: 5 });

    expect((await s.tags.update(env.tenantA, dog.id, { enabled: true })).revision).toBe(6);

    // another tenant cannot touch them
    await expect(s.tags.update(env.tenantB, dog.id, { name: 'mine' })).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect(await tagById(s, env.tenantB, dog.id)).toBeUndefined();
    const removedByB = await s.tags.remove(env.tenantB, [dog.id]);
    expect(removedByB).toEqual([{ id: dog.id, ok: false, error: { code: 'NOT_FOUND', message: 'tag not found' } }]);

    const removed = await s.tags.remove(env.tenantA, [dog.id, '00000000-0000-4000-8000-000000000000']);
    expect(removed.map((r) => r.ok)).toEqual([true, false]);
    expect(await tagById(s, env.tenantA, dog.id)).toBeUndefined();
    expect((await s.vocabularies.get(env.tenantA, v.id)).revision).toBe(7);
  });

  it('replaces descriptions with hand-written ones', async () => {
    const v = await s.vocabularies.create(env.tenantA, { name: 'descriptions' });
    const tag = (await s.tags.add(env.tenantA, v.id, [{ name: 'lamp' }])).results[0]!.tag!;
    const replaced = await s.descriptions.replace(env.tenantA, tag.id, ['  only this   one. ', 'and this one.']);
    expect(replaced.map((d) => [d.source, d.text, d.position])).toEqual([
      ['MANUAL', 'only this one.', 0],
      ['MANUAL', 'and this one.', 1],
    ]);
    expect((await descriptionsOf(s, env.tenantA, tag.id)).map((d) => d.text)).toEqual(['only this one.', 'and this one.']);
    expect((await tagById(s, env.tenantA, tag.id))!.revision).toBe(3);
    await expect(s.descriptions.replace(env.tenantA, tag.id, ['  '])).rejects.toMatchObject({ code: 'BAD_USER_INPUT' });
    await expect(s.descriptions.replace(env.tenantA, tag.id, [])).rejects.toMatchObject({ code: 'BAD_USER_INPUT' });
    // another tenant sees and changes nothing
    await expect(s.descriptions.replace(env.tenantB, tag.id, ['stolen'])).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect((await s.descriptions.listForTags(env.tenantB, [tag.id])).size).toBe(0);
  });

  it('keeps built-in tags described by the pack until their descriptions are replaced', async () => {
    const v = await s.vocabularies.create(env.tenantA, { name: 'builtin edits', fromBuiltin: true });
    const builtin = await env.engine.builtinVocabulary();
    const tag = (await tagNamed(s, env.tenantA, v.id, builtin.tags[3]!.name))!;
    const n = builtin.tags[3]!.descriptionCount;
    let list = await descriptionsOf(s, env.tenantA, tag.id);
    expect(list.map((d) => d.source)).toEqual(Array(n).fill('BUILTIN'));
    expect(list[0]).toMatchObject({ id: `builtin:${tag.id}:0`, text: null, position: -n });
    const snap = await s.labelBanks.forVocabulary(env.tenantA, v.id);
    const row = [...snap.tags].findIndex((t) => t.id === tag.id);
    expect(snap.tags.at(row)!.descriptions.map((d) => d.source)).toEqual(Array(n).fill('BUILTIN'));

    await s.descriptions.replace(env.tenantA, tag.id, ['replaced.']);
    list = await descriptionsOf(s, env.tenantA, tag.id);
    expect(list.map((d) => d.source)).toEqual(['MANUAL']);
    expect((await tagById(s, env.tenantA, tag.id))!.usesBuiltinDescriptions).toBe(false);
    const after = await s.labelBanks.forVocabulary(env.tenantA, v.id);
    expect([...after.tags].find((t) => t.id === tag.id)).toMatchObject({ descriptionSource: 'MANUAL', descriptions: [{ source: 'MANUAL', text: 'replaced.' }] });
  });
});
