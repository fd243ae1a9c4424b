import type { ApolloServerPlugin, BaseContext } from '@apollo/server';
import { httpStatusOfErrors } from '../errors.ts';

/**
 * Gives a GraphQL answer the HTTP status of the AppErrors in it (401, 403, 503...), which no
 * longer carry `extensions.http`. Apollo calls `didEncounterErrors` before it merges the
 * statuses of `extensions.http` into the response, so an error that names its own still wins.
 */
export function errorStatus<C extends BaseContext>(): ApolloServerPlugin<C> {
  return {
    async requestDidStart() {
      return {
        async didEncounterErrors({ errors, response }) {
          const status = httpStatusOfErrors(errors);
          if (status) response.http.status = status;
        },
      };
    },
  };
}
