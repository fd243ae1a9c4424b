#!/usr/bin/env node
/**
 * The `omnitag` command (package.json "bin"): runs the TypeScript CLI, src/cli/tag.ts, from
 * source through tsx (a runtime dependency), so nothing needs building first.
 *   npx omnitag tag photos/ --top 5
 */
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/tag.ts');
