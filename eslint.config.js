import js from '@eslint/js';
import importX, { createNodeResolver } from 'eslint-plugin-import-x';
import tseslint from 'typescript-eslint';

// Import boundaries, one table: what each layer of src/ must not import (src/README.md draws the
// layers). Flat config replaces a rule's options per block instead of merging them, so each
// folder gets one block listing all of its patterns.
const forbid = (group, message) => ({ group, message });
const noTests = forbid(['**/test/**', '../test/*', '../../test/*'], 'src never depends on its tests');
const noTransports = forbid(['graphql', 'graphql/*', '@apollo/*', 'express', 'express/*', 'graphql-upload-minimal', '**/api', '**/api/**'], 'GraphQL and HTTP belong to src/api: throw an AppError and let src/api/errors.ts translate it');
const inferenceFace = forbid(['**/inference/*/**'], 'outside src/inference, import src/inference/index.ts (its sub-packages are internals)');
const vocabFace = forbid(['**/vocab/*', '**/vocab/*/**', '!**/vocab/index.ts'], 'outside src/vocab, import src/vocab/index.ts (its sub-packages are internals)');
const noDatabase = forbid(['**/db/**', '@prisma/*', 'pg', '**/generated/prisma/**'], 'this layer does not talk to the database');
const noApp = forbid(['**/app.ts', '**/main.ts', '**/cli/**'], 'nothing depends on the composition root or the command line');
const layer = (...names) => forbid(names.flatMap((n) => [`**/${n}`, `**/${n}/**`]), `this layer must not import ${names.join(', ')}`);

const BOUNDARIES = {
  // Shared building blocks: nothing of src outside src/core.
  'src/core': [noTests, noTransports, forbid(['../*', '!../core/*'], 'src/core imports nothing else of src')],
  'src/db': [noTests, noTransports, noApp, layer('inference', 'vocab', 'tagging', 'tenancy', 'limits', 'library')],
  // The engine: images and texts in, scores out; no database, no vocabularies, no config.
  'src/inference': [noTests, noTransports, noApp, noDatabase, forbid(['onnxruntime-web'], 'onnxruntime-node only'), layer('vocab', 'tagging', 'tenancy', 'limits', 'library', 'generated', 'config.ts')],
  'src/vocab': [noTests, noTransports, noApp, inferenceFace, forbid(['onnxruntime-node', 'onnxruntime-common', 'sharp'], 'src/vocab talks to the engine through its interface only'), layer('tagging', 'tenancy', 'limits', 'library')],
  // The image library: stored encodings, results, search; tagging stores through it.
  'src/library': [noTests, noTransports, noApp, inferenceFace, vocabFace, layer('tagging', 'tenancy', 'limits')],
  'src/tagging': [noTests, noTransports, noApp, inferenceFace, vocabFace, layer('tenancy', 'limits')],
  'src/tenancy': [noTests, noTransports, noApp, layer('inference', 'vocab', 'tagging', 'limits', 'library')],
  // Per-tenant limits: counters and stored quotas; the layers they guard take them as interfaces.
  'src/limits': [noTests, noTransports, noApp, layer('inference', 'vocab', 'tagging', 'tenancy', 'library')],
  // Metrics: defined here, fed through plain functions by the composition root.
  'src/metrics': [noTests, noTransports, noApp, noDatabase, inferenceFace, layer('vocab', 'tagging', 'tenancy', 'limits', 'library')],
  // The edge: resolvers reach services, never the database handle.
  'src/api': [noTests, noApp, inferenceFace, vocabFace, forbid(['**/db/**', '@prisma/*', 'pg'], 'src/api reaches data through the services only')],
  'src/cli': [noTests, inferenceFace, vocabFace, forbid(['**/api', '**/api/**'], 'the command line does not go through GraphQL')],
};
const restrict = (patterns) => ({ '@typescript-eslint/no-restricted-imports': ['error', { patterns }] });

export default tseslint.config(
  { ignores: ['node_modules/', 'src/generated/', 'console/dist/', 'console/src/generated/', 'packs/', '.data/', 'scratch/', 'tools/**/*.py'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts', '**/*.mjs', '**/*.js'],
    plugins: { 'import-x': importX },
    languageOptions: { ecmaVersion: 2023, sourceType: 'module', globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly', URL: 'readonly', fetch: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', setInterval: 'readonly', clearInterval: 'readonly', setImmediate: 'readonly', performance: 'readonly', structuredClone: 'readonly', AbortController: 'readonly', AbortSignal: 'readonly', TextEncoder: 'readonly', TextDecoder: 'readonly', SharedArrayBuffer: 'readonly', Atomics: 'readonly', queueMicrotask: 'readonly', globalThis: 'readonly' } },
    settings: { 'import-x/resolver-next': [createNodeResolver()] },
    rules: {
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-non-null-assertion': 'off',
    },
  },
  // The composition root, config and entry point may wire anything, through the faces.
  { files: ['src/*.ts'], rules: restrict([noTests, inferenceFace, vocabFace]) },
  ...Object.entries(BOUNDARIES).map(([dir, patterns]) => ({ files: [`${dir}/**/*.ts`], rules: restrict(patterns) })),
  {
    // Until tagging has an upload type of its own, its image reader may name the library's
    // (a type only: nothing of the library runs there).
    files: ['src/tagging/image-input.ts'],
    rules: restrict(BOUNDARIES['src/tagging'].map((p) => (p === noTransports ? { ...p, allowTypeImports: true } : p))),
  },
  {
    // Scripts and the bin shim use the faces too; tests and benchmarks may reach internals.
    files: ['**/*.ts', '**/*.mjs', '**/*.js'],
    ignores: ['src/**', 'test/**', 'bench/**'],
    rules: restrict([inferenceFace]),
  },
  {
    // The console runs in the browser and reaches the server through GraphQL only.
    files: ['console/src/**/*.{ts,tsx}'],
    rules: restrict([forbid(['**/src/**', '../../src/*', '**/test/**', 'node:*'], 'the console reaches the server over GraphQL only (console/src/api)')]),
  },
);
