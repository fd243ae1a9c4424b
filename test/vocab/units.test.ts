import { describe, expect, it } from 'vitest';
import { answerKey, cleanAnswers, cutToTokens, type TokenCounter } from '../../src/vocab/generation/clean.ts';
import { CircuitBreaker, CircuitOpenError, retryAfterMs, Semaphore } from '../../src/core/concurrency.ts';
import { checkDescriptionText, checkLanguage, checkTagName, nameKey, normalizeText } from '../../src/vocab/use-cases/names.ts';
import { IMAGENET_TEMPLATES, MAX_TEMPLATE_DESCRIPTIONS, templateDescriptions } from '../../src/vocab/generation/templates.ts';
import { tinyTokenizer } from './helpers.ts';

describe('tag names', () => {
  it('normalise to NFC, trim and collapse white space, and compare case-insensitively', () => {
    expect(normalizeText(' \u00a0Cafe\u0301\t au\u3000lait \n')).toBe('Café au lait');
    const a = checkTagName('Straße  CAFÉ');
    const b = checkTagName('straße café');
    expect(a).toMatchObject({ ok: true, name: 'Straße CAFÉ' });
    expect(a.ok && b.ok && a.key === b.key).toBe(true);
    expect(nameKey('ÄÖÜ')).toBe('äöü');
  });

  it('accept real tag names and refuse what could break out of a prompt', () => {
    for (const ok of ['3D CG rendering', "rock 'n' roll", 't-shirt', 'AT&T', 'C++', 'pH 7.0', '东京塔', 'Ελλάδα', 'jalapeño', 'Mr. Potato Head', 'what?!', '100%']) {
      expect(checkTagName(ok).ok, ok).toBe(true);
    }
    for (const bad of ['', '   ', '"quoted"', 'new\u0000line', 'a {b}', '<script>', 'back`tick', 'x'.repeat(101), '-leading', 'zero\u200bwidth', 'path/to', 'semi;colon']) {
      expect(checkTagName(bad).ok, JSON.stringify(bad)).toBe(false);
    }
    expect(checkTagName(42)).toMatchObject({ ok: false, problem: { code: 'BAD_USER_INPUT' } });
  });

  it('check languages and descriptions', () => {
    expect(checkLanguage('pt_BR')).toEqual({ ok: true, language: 'pt-br' });
    expect(checkLanguage('ZH')).toEqual({ ok: true, language: 'zh' });
    expect(checkLanguage('english').ok).toBe(false);
    expect(checkDescriptionText('  two   spaces. ')).toEqual({ ok: true, text: 'two spaces.' });
    expect(checkDescriptionText('x'.repeat(1001)).ok).toBe(false);
  });
});

describe('templates', () => {
  it('start with "a photo of a {tag}." and follow CLIP\'s ImageNet templates, 80 at most', () => {
    expect(IMAGENET_TEMPLATES).toHaveLength(80);
    const all = templateDescriptions('fox', 500);
    expect(all).toHaveLength(MAX_TEMPLATE_DESCRIPTIONS);
    expect(MAX_TEMPLATE_DESCRIPTIONS).toBe(80);
    expect(new Set(all).size).toBe(80);
    expect(templateDescriptions('fox', 51)).toHaveLength(51);
    expect(templateDescriptions('fox', 3)).toEqual(['a photo of a fox.', 'a bad photo of a fox.', 'a photo of many fox.']);
    expect(templateDescriptions('fox', 0)).toEqual(['a photo of a fox.']);
  });
});

describe('answer cleaning', () => {
  /** Counts as the engine's workers do (BPE ids + start and end), and records each call's size. */
  async function tinyCounter() {
    const tok = await tinyTokenizer();
    const count = (t: string) => tok.encode(t).length + 2;
    const calls: number[] = [];
    const counter: TokenCounter = async (texts) => {
      calls.push(texts.length);
      return texts.map(count);
    };
    return { count, counter, calls };
  }

  it('drops refusals and empty answers, unwraps quotes, list markers and labels', async () => {
    const opts = { maxTokens: 77 };
    const refusals = ["I'm sorry, but I can't help with that.", 'I’m sorry…', 'As an AI language model, I cannot see images.', 'Unfortunately, I am unable to describe it.', 'Sure. However, I cannot assist with that.'];
    expect(await cleanAnswers(refusals, opts)).toEqual(refusals.map(() => ({ ok: false, reason: 'refusal' })));
    const empties = ['', '   ', '\n\n', '""', '- ', null, undefined, 42];
    expect(await cleanAnswers(empties, opts)).toEqual(empties.map(() => ({ ok: false, reason: 'empty' })));
    expect(await cleanAnswers(['  "A small,\n\nround fruit."  ', '1. Description: “A striped horse.”'], opts)).toEqual([
      { ok: true, text: 'A small, round fruit.', cut: false },
      { ok: true, text: 'A striped horse.', cut: false },
    ]);
    expect(answerKey('A Striped  horse!')).toBe(answerKey('a striped horse'));
  });

  it("cuts to CLIP's context at a word boundary, preferring a sentence end", async () => {
    const { count, counter } = await tinyCounter();
    const long = 'A zebra is a horse-like animal. ' + Array.from({ length: 40 }, (_, i) => `stripe${i} pattern`).join(' ') + '. It lives in Africa.';
    expect(count(long)).toBeGreaterThan(77);
    const [cut] = await cutToTokens([long], 77, counter);
    expect(count(cut!)).toBeLessThanOrEqual(77);
    expect(long.startsWith(cut!)).toBe(true);
    expect(count(cut!)).toBeGreaterThan(50); // the sentence end is too early to prefer
    const sentences = 'One two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen. ' + 'word '.repeat(100);
    expect(await cutToTokens([sentences], 24, counter)).toEqual(['One two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen.']);
    const oneWord = 'x'.repeat(400);
    const [cutWord] = await cutToTokens([oneWord], 77, counter);
    expect(count(cutWord!)).toBeLessThanOrEqual(77);
    expect(count(cutWord! + 'x')).toBeGreaterThan(77); // the longest prefix that fits
    expect(await cutToTokens(['short.'], 77, counter)).toEqual(['short.']);
  });

  it('cuts many answers with at most three counting calls, each as it would be cut alone', async () => {
    const { count, counter, calls } = await tinyCounter();
    const texts = [
      'short.',
      'A zebra is a horse-like animal. ' + 'with many stripes and a mane '.repeat(20),
      'y'.repeat(300),
      'fine as it is, a plain description of a thing.',
      'Sentence one is here. ' + 'more words follow it '.repeat(30),
      'z'.repeat(500) + ' tail words',
    ];
    const together = await cutToTokens(texts, 77, counter);
    expect(calls).toHaveLength(3); // the whole texts, word prefixes, character prefixes
    expect(calls[0]).toBe(texts.length);
    for (const [i, text] of texts.entries()) {
      expect(await cutToTokens([text], 77, counter), `text ${i}`).toEqual([together[i]]);
      expect(count(together[i]!)).toBeLessThanOrEqual(77);
      expect(text.startsWith(together[i]!)).toBe(true);
    }
    expect(together[0]).toBe('short.');
    expect(together[3]).toBe(texts[3]);
    // cleaning marks what was cut, and counts nothing when nothing needs cutting
    calls.length = 0;
    const cleaned = await cleanAnswers(['"' + texts[1] + '"', 'I cannot help with that.', texts[0]], { maxTokens: 77, countTokens: counter });
    expect(cleaned).toEqual([
      { ok: true, text: together[1], cut: true },
      { ok: false, reason: 'refusal' },
      { ok: true, text: 'short.', cut: false },
    ]);
    expect(calls).toEqual([2, expect.any(Number)]);
    calls.length = 0;
    await cleanAnswers(['short.', 'I am sorry.'], { maxTokens: 77, countTokens: counter });
    expect(calls).toEqual([1]);
  });
});

describe('retry and breaker primitives', () => {
  it('reads Retry-After in milliseconds, seconds or as an HTTP date', () => {
    const h = (o: Record<string, string>) => new Headers(o);
    expect(retryAfterMs(h({ 'retry-after-ms': '250' }))).toBe(250);
    expect(retryAfterMs(h({ 'retry-after': '2' }))).toBe(2000);
    expect(retryAfterMs(h({ 'retry-after': '0.5' }))).toBe(500);
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(retryAfterMs(h({ 'retry-after': 'Thu, 01 Jan 2026 00:00:03 GMT' }), now)).toBe(3000);
    expect(retryAfterMs(h({ 'retry-after': 'soon' }))).toBeUndefined();
    expect(retryAfterMs(undefined)).toBeUndefined();
  });

  it('opens after consecutive failures, fails fast, then lets one trial through', () => {
    let t = 0;
    const b = new CircuitBreaker(3, 1000, () => t);
    b.failure();
    b.failure();
    b.success(); // a success resets the count
    b.failure();
    b.failure();
    expect(b.state).toBe('closed');
    b.failure();
    expect(b.state).toBe('open');
    expect(() => b.check()).toThrow(CircuitOpenError);
    expect(() => b.check()).toThrow(expect.objectContaining({ retryAfterMs: 1000 }));
    t = 1000;
    expect(() => b.check()).not.toThrow(); // the trial
    expect(() => b.check()).toThrow(); // only one at a time
    b.failure();
    expect(b.state).toBe('open');
    t = 2500;
    b.check();
    b.success();
    expect(b.state).toBe('closed');
    expect(() => b.check()).not.toThrow();
  });

  it('bounds concurrency and lets aborted waiters leave the queue', async () => {
    const sem = new Semaphore(2);
    const r1 = await sem.acquire();
    const r2 = await sem.acquire();
    const order: string[] = [];
    const ac = new AbortController();
    const w3 = sem.acquire({ signal: ac.signal }).then(() => order.push('aborted one got a slot'), () => order.push('w3 left'));
    const w4 = sem.acquire().then((release) => {
      order.push('w4');
      release();
    });
    ac.abort();
    await w3;
    r1();
    r1(); // releasing twice frees one slot only
    await w4;
    r2();
    expect(order).toEqual(['w3 left', 'w4']);
    const a = await sem.acquire();
    const b = await sem.acquire();
    let third = false;
    void sem.acquire().then(() => (third = true));
    await new Promise((r) => setTimeout(r, 10));
    expect(third).toBe(false);
    a();
    b();
  });
});
