import js from '@eslint/js';
import importX, { createNodeResolver } from 'eslint-plugin-import-x';
import tseslint from 'typescript-eslint';

/** Folders that must not know the transports (GraphQL, Apollo, Express, uploads) or src/api. */
const TRANSPORT_FREE = ['src/core/**/*.ts', 'src/inference/**/*.ts', 'src/vocab/**/*.ts', 'src/tagging/**/*.ts', 'src/tenancy/**/*.ts', 'src/db/**/*.ts'];
const TRANSPORT_PATTERNS = [
  { group: ['graphql', 'graphql/*', '@apollo/*', 'express', 'express/*'], message: 'GraphQL and HTTP belong to src/api: throw an AppError and let src/api/errors.ts translate it' },
  { group: ['graphql-upload-minimal'], message: 'uploads are parsed in src/api' },
  { group: ['**/api', '**/api/**'], message: 'src/api depends on the domain, never the reverse' },
];
// Flat config replaces a rule's options per block rather than merging them, so each block
// that sets no-restricted-imports lists every pattern that applies to its files.
const noTestCode = { group: ['**/test/**', '../test/*', '../../test/*'], message: 'src must not import test code' };
const inferenceFace = {
  group: ['**/inference/*/**'],
  message: 'outside src/inference, import src/inference/index.ts (its sub-packages are internals)',
};

export default tseslint.config(
  { ignores: ['node_modules/', 'src/generated/', 'packs/', '.data/', 'scratch/', 'tools/**/*.py'] },
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
  {
    // The server never depends on its tests, and reaches inference only through its face.
    files: ['src/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [noTestCode, inferenceFace] }],
    },
  },
  {
    // The same face for the rest (scripts, the bin shim); tests and benchmarks may reach internals.
    files: ['**/*.ts', '**/*.mjs', '**/*.js'],
    ignores: ['src/**', 'test/**', 'bench/**'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [inferenceFace] }],
    },
  },
  // --- Boundary: transports stay in src/api -------------------------------------------------
  // The domain and its infrastructure know nothing of GraphQL or HTTP: they throw AppErrors and
  // src/api translates them. This uses the typescript-eslint copy of the rule so that it adds to
  // the `no-restricted-imports` blocks around it instead of replacing their options.
  {
    files: TRANSPORT_FREE,
    rules: {
      '@typescript-eslint/no-restricted-imports': ['error', { patterns: TRANSPORT_PATTERNS }],
    },
  },
  {
    // Until tagging has an upload type of its own, its image reader may name the library's
    // (a type only: nothing of the library runs there).
    files: ['src/tagging/image-input.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': ['error', { patterns: TRANSPORT_PATTERNS.map((p) => (p.group.includes('graphql-upload-minimal') ? { ...p, allowTypeImports: true } : p)) }],
    },
  },
  // --- End of boundary: transports stay in src/api --------------------------------------------
  {
    // The inference engine knows nothing of GraphQL or the database.
    files: ['src/inference/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [
        noTestCode,
        { group: ['graphql', '@apollo/*', '@prisma/*', '**/generated/**', '**/api/**', '**/db/**', '**/vocab/**'], message: 'src/inference is independent of the API and the database' },
      ] }],
    },
  },
  {
    // Vocabularies know nothing of ONNX internals or of GraphQL.
    files: ['src/vocab/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [
        noTestCode,
        inferenceFace,
        { group: ['onnxruntime-node', 'onnxruntime-common', '@apollo/*', '**/api/**'], message: 'src/vocab talks to the engine through its interface only' },
      ] }],
    },
  },
);
