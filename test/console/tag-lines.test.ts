import { describe, expect, it } from 'vitest';
import { csvFields, parseTagLines } from '../../console/src/screens/tag-lines.ts';
import { formatNames, parseNames } from '../../console/src/screens/localized-names.ts';

describe('the console’s bulk-add lines', () => {
  it('splits CSV records, with quoted commas and doubled quotes', () => {
    expect(csvFields('cat')).toEqual(['cat']);
    expect(csvFields(' dog , 0.7 ,puppy|doggo')).toEqual(['dog', '0.7', 'puppy|doggo']);
    expect(csvFields('"ferret, domestic",0.5')).toEqual(['ferret, domestic', '0.5']);
    expect(csvFields('"the ""big"" one",')).toEqual(['the "big" one', '']);
  });

  it('reads name, threshold and aliases per line, skips blanks and a header, and names a bad threshold', () => {
    const lines = parseTagLines('name,threshold,aliases\r\ncat\n\n  \ndog,0.7,puppy| doggo \nbird,abc\n"a, b"');
    expect(lines).toEqual([
      { text: 'cat', input: { name: 'cat' } },
      { text: 'dog,0.7,puppy| doggo ', input: { name: 'dog', threshold: 0.7, aliases: ['puppy', 'doggo'] } },
      { text: 'bird,abc', problem: 'the threshold “abc” is not a number' },
      { text: '"a, b"', input: { name: 'a, b' } },
    ]);
    // a first line that is a tag, not a header, is kept
    expect(parseTagLines('named entity\nx').map((l) => l.text)).toEqual(['named entity', 'x']);
  });

  it('writes and reads names in other languages', () => {
    const names = [
      { language: 'fr', name: 'boulier' },
      { language: 'zh', name: '算盘' },
    ];
    expect(formatNames(names)).toBe('fr: boulier; zh: 算盘');
    expect(parseNames(' FR : boulier ;zh:算盘; ')).toEqual(names);
  });
});
