import { performance } from 'node:perf_hooks';
import type { ApolloServerPlugin, BaseContext } from '@apollo/server';

export interface OperationMetricsOptions {
  /** An operation ended: its name (`anonymous` without one), `ok` or its first error's code, and its duration. */
  observe(operation: string, outcome: string, seconds: number): void;
}

/** Times every GraphQL operation, from the request reaching Apollo to its answer. */
export function operationMetrics<C extends BaseContext>({ observe }: OperationMetricsOptions): ApolloServerPlugin<C> {
  return {
    async requestDidStart() {
      const started = performance.now();
      return {
        async willSendResponse({ operationName, response }) {
          // the answer as the client gets it: errors already carry our codes (api/errors.ts)
          const errors = response.body.kind === 'single' ? response.body.singleResult.errors : undefined;
          const outcome = errors?.length ? String(errors[0]!.extensions?.code ?? 'INTERNAL_SERVER_ERROR') : 'ok';
          observe(operationName ?? 'anonymous', outcome, (performance.now() - started) / 1000);
        },
      };
    },
  };
}
