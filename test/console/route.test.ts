import { describe, expect, it } from 'vitest';
import { href, menuScreen, parseRoute, type Route } from '../../console/src/route.ts';

describe('the console’s routes', () => {
  it('reads a vocabulary, its images, and nothing deeper', () => {
    expect(parseRoute('#/vocabularies')).toEqual({ screen: 'vocabularies' });
    expect(parseRoute('#/vocabularies/v%2F1')).toEqual({ screen: 'vocabulary', id: 'v/1' });
    expect(parseRoute('#/vocabularies/v%2F1/images')).toEqual({ screen: 'images', id: 'v/1' });
    expect(parseRoute('#/vocabularies/v1/elsewhere')).toBeNull();
    expect(parseRoute('#/nowhere')).toBeNull();
  });

  it('writes what it reads, and files a vocabulary and its images under "Vocabularies"', () => {
    const routes: Route[] = [{ screen: 'vocabularies' }, { screen: 'vocabulary', id: 'a b/c' }, { screen: 'images', id: 'a b/c' }, { screen: 'keys' }];
    for (const r of routes) expect(parseRoute(href(r))).toEqual(r);
    expect(routes.map(menuScreen)).toEqual(['vocabularies', 'vocabularies', 'vocabularies', 'keys']);
  });
});
