import type { ApolloServerPlugin, BaseContext } from '@apollo/server';
import {
  type ArgumentNode,
  type DirectiveNode,
  type DocumentNode,
  type GraphQLSchema,
  Kind,
  type OperationDefinitionNode,
  type SelectionSetNode,
  type TypeNode,
  type ValueNode,
} from 'graphql';
import { badInput } from '../../core/errors.ts';
import { unstorableText } from '../../core/text.ts';
import { toGraphQLError } from '../errors.ts';

export interface TextInputsOptions {
  /** Says why a text may not be used, or undefined when it may. Default: core/text.ts's `unstorableText`. */
  check?: (text: string) => string | undefined;
}

/** A text input that failed the check: where it was, and why. */
export interface TextInputProblem {
  /** `tags[0].name` (an argument of the field `at`, written in the document) or `$tags[0].name` (a variable). */
  field: string;
  /** The field whose argument it is, for texts written in the document. */
  at?: string;
  problem: string;
}

/**
 * Checks every text a client sends before any resolver runs: the string literals of the
 * document (arguments, input fields, list items, variable defaults) and the string values of
 * the variables, walked along their declared types. One refused text refuses the operation
 * with BAD_USER_INPUT naming it, so no argument or input field, present or future, can carry
 * text that the database would refuse (a NUL) or silently alter (an unpaired surrogate).
 */
export function textInputs<C extends BaseContext>({ check = unstorableText }: TextInputsOptions = {}): ApolloServerPlugin<C> {
  return {
    async requestDidStart() {
      return {
        async didResolveOperation({ document, operation, request, schema }) {
          const found = findInDocument(document, check) ?? (operation ? findInVariables(schema, operation, request.variables ?? {}, check) : undefined);
          if (!found) return;
          const where = found.at ? `argument "${found.field}" of ${found.at}` : `variable "${found.field}"`;
          throw toGraphQLError(badInput(`${where} ${found.problem}`, { field: found.field }), 400);
        },
      };
    },
  };
}

type Check = (text: string) => string | undefined;

/** The first refused string literal of the document, if any. */
export function findInDocument(document: DocumentNode, check: Check): TextInputProblem | undefined {
  for (const def of document.definitions) {
    if (def.kind === Kind.OPERATION_DEFINITION) {
      for (const v of def.variableDefinitions ?? []) {
        const name = `$${v.variable.name.value}`;
        const found = (v.defaultValue && inValue(v.defaultValue, name, undefined, check)) || inDirectives(v.directives, check);
        if (found) return found;
      }
      const found = inDirectives(def.directives, check) ?? inSelections(def.selectionSet, check);
      if (found) return found;
    } else if (def.kind === Kind.FRAGMENT_DEFINITION) {
      const found = inDirectives(def.directives, check) ?? inSelections(def.selectionSet, check);
      if (found) return found;
    }
  }
  return undefined;
}

function inSelections(set: SelectionSetNode, check: Check): TextInputProblem | undefined {
  for (const selection of set.selections) {
    let found = inDirectives(selection.directives, check);
    if (!found && selection.kind === Kind.FIELD) found = inArguments(selection.arguments, selection.name.value, check);
    if (!found && selection.kind !== Kind.FRAGMENT_SPREAD && selection.selectionSet) found = inSelections(selection.selectionSet, check);
    if (found) return found;
  }
  return undefined;
}

function inDirectives(directives: readonly DirectiveNode[] | undefined, check: Check): TextInputProblem | undefined {
  for (const d of directives ?? []) {
    const found = inArguments(d.arguments, `@${d.name.value}`, check);
    if (found) return found;
  }
  return undefined;
}

function inArguments(args: readonly ArgumentNode[] | undefined, at: string, check: Check): TextInputProblem | undefined {
  for (const arg of args ?? []) {
    const found = inValue(arg.value, arg.name.value, at, check);
    if (found) return found;
  }
  return undefined;
}

function inValue(value: ValueNode, field: string, at: string | undefined, check: Check): TextInputProblem | undefined {
  switch (value.kind) {
    case Kind.STRING: {
      const problem = check(value.value);
      return problem ? { field, ...(at ? { at } : {}), problem } : undefined;
    }
    case Kind.LIST:
      for (const [i, item] of value.values.entries()) {
        const found = inValue(item, `${field}[${i}]`, at, check);
        if (found) return found;
      }
      return undefined;
    case Kind.OBJECT:
      for (const f of value.fields) {
        const found = inValue(f.value, `${field}.${f.name.value}`, at, check);
        if (found) return found;
      }
      return undefined;
    default:
      return undefined;
  }
}

/** The first refused string among the operation's variable values, walked along their declared types. */
export function findInVariables(
  schema: GraphQLSchema,
  operation: OperationDefinitionNode,
  variables: Readonly<Record<string, unknown>>,
  check: Check,
): TextInputProblem | undefined {
  for (const def of operation.variableDefinitions ?? []) {
    const name = def.variable.name.value;
    if (!Object.hasOwn(variables, name)) continue;
    const found = inDeclared(variables[name], def.type, schema, `$${name}`, check);
    if (found) return found;
  }
  return undefined;
}

/*
 * The types are told apart by their tags, not with graphql-js's `is…Type` predicates: those
 * insist on their own copy of the classes, and the schema may come from another copy of graphql
 * than this module (Apollo's, under a test runner or a bundler).
 */
interface InputType {
  readonly ofType?: InputType;
  getFields?(): Record<string, { readonly type: InputType }>;
}
const tagOf = (type: unknown) => Object.prototype.toString.call(type);

/** Along a variable's declared type, as written in the operation. */
function inDeclared(value: unknown, type: TypeNode, schema: GraphQLSchema, field: string, check: Check): TextInputProblem | undefined {
  switch (type.kind) {
    case Kind.NON_NULL_TYPE:
      return inDeclared(value, type.type, schema, field, check);
    case Kind.LIST_TYPE:
      return inList(value, field, (item, at) => inDeclared(item, type.type, schema, at, check));
    default: {
      const named = schema.getType(type.name.value) as InputType | undefined;
      return named ? inInput(value, named, field, check) : inLeaf(value, field, check);
    }
  }
}

/** Along a type of the schema (the fields of input objects). */
function inInput(value: unknown, type: InputType, field: string, check: Check): TextInputProblem | undefined {
  if (value === null || value === undefined) return undefined;
  const tag = tagOf(type);
  if (tag === '[object GraphQLNonNull]') return inInput(value, type.ofType!, field, check);
  if (tag === '[object GraphQLList]') return inList(value, field, (item, at) => inInput(item, type.ofType!, at, check));
  if (tag === '[object GraphQLInputObjectType]' && type.getFields) {
    if (typeof value !== 'object' || Array.isArray(value)) return undefined;
    for (const [name, f] of Object.entries(type.getFields())) {
      const found = inInput((value as Record<string, unknown>)[name], f.type, `${field}.${name}`, check);
      if (found) return found;
    }
    return undefined;
  }
  return inLeaf(value, field, check);
}

function inList(value: unknown, field: string, inItem: (item: unknown, field: string) => TextInputProblem | undefined): TextInputProblem | undefined {
  if (value === null || value === undefined) return undefined;
  // graphql-js takes a single value where a list is expected as a list of one
  if (!Array.isArray(value)) return inItem(value, field);
  for (const [i, item] of value.entries()) {
    const found = inItem(item, `${field}[${i}]`);
    if (found) return found;
  }
  return undefined;
}

/** Scalars and enums: any string among them is text the client sent. */
function inLeaf(value: unknown, field: string, check: Check): TextInputProblem | undefined {
  if (typeof value !== 'string') return undefined;
  const problem = check(value);
  return problem ? { field, problem } : undefined;
}
