import fs from 'node:fs';
import path from 'node:path';
import {
  astFromValue,
  buildSchema,
  getNamedType,
  getNullableType,
  type GraphQLField,
  type GraphQLInputType,
  type GraphQLObjectType,
  isEnumType,
  isInputObjectType,
  isListType,
  isNonNullType,
  isObjectType,
  print,
} from 'graphql';

/** schema.graphql, for tests that derive their cases from the contract itself. */
export const schema = buildSchema(fs.readFileSync(path.resolve(import.meta.dirname, '..', '..', 'schema.graphql'), 'utf8'));

export type AnyField = GraphQLField<unknown, unknown>;

/** Input field names and list indices inside an argument's value. */
export type InputPath = (string | number)[];

/** An id that names nothing. */
export const FILLER_ID = '00000000-0000-4000-8000-000000000000';

/** A value of `type`: `text` at `inner` when given, valid placeholders for what is required elsewhere. */
export function valueOf(type: GraphQLInputType, inner: InputPath | undefined, text = 'x'): unknown {
  const t = getNullableType(type);
  if (isListType(t)) return [valueOf(t.ofType, inner?.slice(1), text)];
  if (isInputObjectType(t)) {
    const out: Record<string, unknown> = {};
    for (const f of Object.values(t.getFields())) {
      if (inner && inner[0] === f.name) out[f.name] = valueOf(f.type, inner.slice(1), text);
      else if (isNonNullType(f.type)) out[f.name] = valueOf(f.type, undefined, text);
    }
    return out;
  }
  if (inner) return text;
  if (isEnumType(t)) return t.getValues()[0]!.value;
  switch ((t as { name: string }).name) {
    case 'ID':
      return FILLER_ID;
    case 'Int':
      return 1;
    case 'Float':
      return 0.5;
    case 'Boolean':
      return false;
    case 'DateTime':
      return '2026-01-01T00:00:00Z';
    default:
      return 'x';
  }
}

/** `value` written as a GraphQL literal of `type`. */
export const literal = (value: unknown, type: GraphQLInputType): string => print(astFromValue(value, type)!);

/** The field's required arguments other than those in `except`, as `name: literal`. */
export function requiredArgs(field: AnyField, except: readonly string[] = []): string[] {
  return field.args.filter((a) => !except.includes(a.name) && isNonNullType(a.type)).map((a) => `${a.name}: ${literal(valueOf(a.type, undefined), a.type)}`);
}

/** The shortest chain of fields from Query (then Mutation) to a field of type `target`. */
export function chainTo(target: GraphQLObjectType): { operation: 'query' | 'mutation'; fields: AnyField[] } {
  const queue = [
    { operation: 'query' as const, type: schema.getQueryType()!, fields: [] as AnyField[] },
    { operation: 'mutation' as const, type: schema.getMutationType()!, fields: [] as AnyField[] },
  ];
  const seen = new Set<string>();
  while (queue.length) {
    const { operation, type, fields } = queue.shift()!;
    if (type === target) return { operation, fields };
    if (seen.has(type.name)) continue;
    seen.add(type.name);
    for (const f of Object.values(type.getFields())) {
      const named = getNamedType(f.type);
      if (isObjectType(named)) queue.push({ operation, type: named, fields: [...fields, f] });
    }
  }
  throw new Error(`no path to ${target.name}`);
}

/** `selection` wrapped in the chain of fields that leads to its type (required arguments filled in). */
export function wrapInChain(fields: readonly AnyField[], selection: string): string {
  let out = selection;
  for (const f of [...fields].reverse()) {
    const req = requiredArgs(f);
    out = `${f.name}${req.length ? `(${req.join(', ')})` : ''} { ${out} }`;
  }
  return out;
}
