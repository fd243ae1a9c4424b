import type { ApolloServerPlugin, BaseContext } from '@apollo/server';
import { httpStatusOfErrors, retryAfterOfErrors } from '../errors.ts';

/**
 * Gives a GraphQL answer the HTTP status of the AppErrors in it (401, 403, 429, 503...), which no
 * longer carry `extensions.http`, and the `Retry-After` of a refusal that names its wait. Apollo calls `didEncounterErrors` before it merges the
 * statuses of `extensions.http` into the response, so an error that names its own still wins.
 */
export function errorStatus<C extends BaseContext>(): ApolloServerPlugin<C> {
  return {
    async requestDidStart() {
      return {
        async didEncounterErrors({ errors, response }) {
          const status = httpStatusOfErrors(errors);
          if (status) response.http.status = status;
          const retryAfter = retryAfterOfErrors(errors);
          if (retryAfter) response.http.headers.set('retry-after', retryAfter);
        },
      };
    },
  };
}
