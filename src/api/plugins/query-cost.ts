import type { ApolloServerPlugin, BaseContext } from '@apollo/server';
import {
  type ArgumentNode,
  type DocumentNode,
  type FragmentDefinitionNode,
  type GraphQLSchema,
  Kind,
  type OperationDefinitionNode,
  type SelectionSetNode,
  type ValueNode,
} from 'graphql';
import { badInput } from '../../core/errors.ts';
import { toGraphQLError } from '../errors.ts';

export interface CostWeights {
  /** A field with a selection (an object, a list of objects). */
  readonly objectCost: number;
  /** A leaf field. */
  readonly scalarCost: number;
}

export interface QueryCostOptions {
  readonly maxCost: number;
  readonly weights: CostWeights;
}

/** The arguments that size a page: a field with one costs its selection that many times. */
const PAGE_ARGUMENTS = ['first', 'last'];

/**
 * What an operation costs: `objectCost` a field with a selection, `scalarCost` a leaf, and in a
 * field with `first`/`last` (a page), its lists (edges, nodes) that many times what they select,
 * the number read as the resolvers will read it: written in the document, given in a variable,
 * or the argument's default where absent. A page's `totalCount` and `pageInfo` count once.
 * So the cost bounds the values an answer can hold, however the client spells its page sizes
 * (a check on the document alone sees neither variables nor defaults).
 */
export function operationCost(
  schema: GraphQLSchema,
  document: DocumentNode,
  operation: OperationDefinitionNode,
  variables: Readonly<Record<string, unknown>>,
  weights: CostWeights,
): number {
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const def of document.definitions) if (def.kind === Kind.FRAGMENT_DEFINITION) fragments.set(def.name.value, def);
  // the variables' values, their defaults where not given (validated already: types match)
  const values: Record<string, unknown> = {};
  for (const v of operation.variableDefinitions ?? []) {
    const name = v.variable.name.value;
    values[name] = variables[name] !== undefined ? variables[name] : v.defaultValue && intOf(v.defaultValue, {});
  }
  // a fragment spread many times is priced once (spreads cannot cycle past validation)
  const fragmentCosts = new Map<string, number>();

  /** `page`: how many times the lists among these fields repeat what they select (the parent's page size). */
  const costOf = (set: SelectionSetNode, parent: SchemaType | undefined, page: number): number => {
    let total = 0;
    for (const sel of set.selections) {
      if (sel.kind === Kind.INLINE_FRAGMENT) {
        total += costOf(sel.selectionSet, sel.typeCondition ? (schema.getType(sel.typeCondition.name.value) as SchemaType | undefined) : parent, page);
      } else if (sel.kind === Kind.FRAGMENT_SPREAD) {
        const key = `${sel.name.value}:${page}`;
        let cost = fragmentCosts.get(key);
        if (cost === undefined) {
          const fragment = fragments.get(sel.name.value);
          cost = fragment ? costOf(fragment.selectionSet, schema.getType(fragment.typeCondition.name.value) as SchemaType | undefined, page) : 0;
          fragmentCosts.set(key, cost);
        }
        total += cost;
      } else {
        const field = parent?.getFields?.()[sel.name.value];
        // a list in a page (a connection's edges or nodes) holds one item per place in the page
        const repeat = field && isList(field.type) ? page : 1;
        const own = sel.selectionSet ? weights.objectCost + costOf(sel.selectionSet, field && namedType(field.type), pageSize(sel.arguments ?? [], field?.args ?? [])) : weights.scalarCost;
        total += own * repeat;
      }
    }
    return total;
  };

  const pageSize = (args: readonly ArgumentNode[], defs: readonly SchemaArgument[]): number => {
    let size = 1;
    for (const name of PAGE_ARGUMENTS) {
      const def = defs.find((d) => d.name === name);
      if (!def) continue;
      const node = args.find((a) => a.name.value === name);
      const value = node ? intOf(node.value, values) : def.defaultValue;
      if (typeof value === 'number' && Number.isFinite(value)) size = Math.max(size, value);
    }
    return size;
  };

  const root = operation.operation === 'mutation' ? schema.getMutationType() : operation.operation === 'subscription' ? schema.getSubscriptionType() : schema.getQueryType();
  return costOf(operation.selectionSet, (root ?? undefined) as SchemaType | undefined, 1);
}

/*
 * The schema is read through these shapes, not graphql-js's `is…Type` predicates or
 * `valueFromAST`: those insist on their own copy of the classes, and the schema may come from
 * another copy of graphql than this module (Apollo's, under a test runner or a bundler).
 */
interface SchemaArgument {
  readonly name: string;
  readonly defaultValue?: unknown;
}
interface SchemaType {
  readonly ofType?: SchemaType;
  getFields?(): Record<string, { readonly type: SchemaType; readonly args?: readonly SchemaArgument[] }>;
}

/** Whether a field's type is a list (under a non-null or not). */
const isList = (type: SchemaType): boolean => String(type).startsWith('[');

/** The named type under lists and non-nulls. */
function namedType(type: SchemaType): SchemaType {
  let t = type;
  while (t.ofType) t = t.ofType;
  return t;
}

/** An Int argument's value: written, or a variable's (undefined where neither is a number). */
function intOf(node: ValueNode, values: Readonly<Record<string, unknown>>): number | undefined {
  if (node.kind === Kind.INT) return Number.parseInt(node.value, 10);
  if (node.kind === Kind.VARIABLE) {
    const v = values[node.name.value];
    return typeof v === 'number' ? v : undefined;
  }
  return undefined;
}

/** Refuses an operation whose cost (`operationCost`) is over `maxCost`: BAD_USER_INPUT, 400, before any resolver runs. */
export function queryCost<C extends BaseContext>({ maxCost, weights }: QueryCostOptions): ApolloServerPlugin<C> {
  return {
    async requestDidStart() {
      return {
        async didResolveOperation({ document, operation, request, schema }) {
          if (!operation) return;
          const cost = operationCost(schema, document, operation, request.variables ?? {}, weights);
          if (cost > maxCost) throw toGraphQLError(badInput(`Query cost limit of ${maxCost} exceeded: this operation costs ${cost}`, { field: 'query' }), 400);
        },
      };
    },
  };
}
