import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { readImageInput } from '../../src/tagging/image-input.ts';

const read = (base64: string, maxBytes = 1 << 20) => readImageInput({ base64 }, { maxBytes }, undefined);
const code = (p: Promise<unknown>) => p.then(() => 'ok', (e: { code?: string }) => e.code);

describe('base64 image input', () => {
  it('decodes every length, both alphabets, with or without padding and a data: prefix', async () => {
    for (let n = 0; n < 40; n++) {
      const bytes = randomBytes(n);
      for (const text of [bytes.toString('base64'), bytes.toString('base64url'), bytes.toString('base64').replace(/=+$/, ''), `data:image/jpeg;base64,${bytes.toString('base64')}`]) {
        expect(Buffer.from(await read(text)).equals(bytes)).toBe(true);
      }
    }
  });

  it('accepts wrapped lines, as base64 tools write them', async () => {
    const bytes = randomBytes(1000);
    const wrapped = bytes.toString('base64').replace(/.{76}/g, '$&\r\n');
    expect(Buffer.from(await read(wrapped)).equals(bytes)).toBe(true);
  });

  it('refuses any other character, wherever it is, instead of skipping it', async () => {
    const clean = randomBytes(300).toString('base64');
    for (const bad of ['!', '.', '=', 'é', '\u0000', '%']) {
      for (const at of [0, 1, 2, 3, 200, clean.length - 1]) {
        expect(await code(read(clean.slice(0, at) + bad + clean.slice(at)))).toBe('BAD_USER_INPUT');
      }
    }
    expect(await code(read('AA==AAAA'))).toBe('BAD_USER_INPUT');
  });

  it('refuses more bytes than the limit, clean or wrapped', async () => {
    const bytes = randomBytes(1001);
    expect(await code(read(bytes.toString('base64'), 1000))).toBe('IMAGE_TOO_LARGE');
    expect(await code(read(bytes.toString('base64').replace(/.{76}/g, '$&\n'), 1000))).toBe('IMAGE_TOO_LARGE');
    expect(await code(read(bytes.subarray(0, 1000).toString('base64'), 1000))).toBe('ok');
  });
});
