import fs from 'node:fs';
import path from 'node:path';
import express, { type Router } from 'express';

/**
 * The console's Content-Security-Policy: everything from this origin only, and only what the
 * console uses. Two relaxations, both for the bundled GraphiQL (nothing is fetched from elsewhere):
 * its editor positions and sizes elements with `style` attributes (style-src 'unsafe-inline'), and
 * its stylesheet embeds its icons and fonts as data: URLs (img-src and font-src data:). Images the
 * user picks in "Try it" are previewed from blob: URLs.
 */
export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: blob:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** Where `npm install` (and `npm run console:build`) puts the built console. */
export const CONSOLE_DIR = path.resolve(import.meta.dirname, '..', '..', 'console', 'dist');

/**
 * Serves the built console at /console/. Its assets carry a content hash in their names and are
 * cached for good; index.html is asked for again each time. Without a build, /console says how to
 * make one.
 */
export function consoleRoutes(dir: string = CONSOLE_DIR): Router {
  const router = express.Router();
  router.use((_req, res, next) => {
    res.set({
      'content-security-policy': CONSOLE_CSP,
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
      'cross-origin-opener-policy': 'same-origin',
    });
    next();
  });
  const index = path.join(dir, 'index.html');
  router.get('/', (req, res, next) => {
    // A relative asset path needs the trailing slash: /console → /console/.
    if (!req.originalUrl.split('?')[0]!.endsWith('/')) return res.redirect(301, `${req.baseUrl}/`);
    if (!fs.existsSync(index)) {
      res.status(503).type('text/plain').send('The console is not built: run `npm run console:build` (npm install does it).\n');
      return;
    }
    res.set('cache-control', 'no-cache');
    res.sendFile(index, (err) => err && next(err));
  });
  router.use('/assets', express.static(path.join(dir, 'assets'), { immutable: true, maxAge: '365d', index: false, fallthrough: false }));
  return router;
}
