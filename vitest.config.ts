import { createRequire } from 'node:module';
import { defineConfig } from 'vitest/config';

const require = createRequire(import.meta.url);

export default defineConfig({
  resolve: {
    // One graphql instance for our code and Apollo's (Node loads its CommonJS build; Vite would
    // otherwise pick the .mjs one and `instanceof GraphQLError` would fail across the two).
    alias: { graphql: require.resolve('graphql') },
  },
  test: {
    include: ['test/**/*.test.ts'],
    // onnxruntime-node and sharp are native addons that crash in thread pools.
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 120_000,
    globalSetup: ['test/global-setup.ts'],
  },
});
