/**
 * What a query reads below the field being resolved, so that services compute only what is
 * read (heat maps cost one more decoder pass). Follows fragments and inline fragments and leaves
 * out what @skip/@include leave out.
 */
import { Kind, type DirectiveNode, type FieldNode, type GraphQLResolveInfo, type SelectionSetNode, type ValueNode } from 'graphql';

/** Whether @skip/@include keep a selection, given the request's variables (validated by then). */
function included(directives: readonly DirectiveNode[] | undefined, variables: Record<string, unknown>): boolean {
  const condition = (value: ValueNode | undefined) => (value?.kind === Kind.BOOLEAN ? value.value : value?.kind === Kind.VARIABLE ? variables[value.name.value] === true : false);
  for (const d of directives ?? []) {
    const arg = d.arguments?.find((a) => a.name.value === 'if')?.value;
    if (d.name.value === 'skip' && condition(arg)) return false;
    if (d.name.value === 'include' && !condition(arg)) return false;
  }
  return true;
}

/** Whether a field named `child` is selected directly under any field named `parent`, at any depth. */
export function selectsBelow(info: GraphQLResolveInfo, parent: string, children: readonly string[]): boolean {
  const seen = new Set<string>();
  const walk = (set: SelectionSetNode | undefined, underParent: boolean): boolean => {
    for (const sel of set?.selections ?? []) {
      if (!included(sel.directives, info.variableValues)) continue;
      if (sel.kind === Kind.FIELD) {
        if (underParent && children.includes(sel.name.value)) return true;
        if (walk(sel.selectionSet, sel.name.value === parent)) return true;
      } else if (sel.kind === Kind.INLINE_FRAGMENT) {
        if (walk(sel.selectionSet, underParent)) return true;
      } else if (!seen.has(`${sel.name.value}:${underParent}`)) {
        seen.add(`${sel.name.value}:${underParent}`);
        if (walk(info.fragments[sel.name.value]?.selectionSet, underParent)) return true;
      }
    }
    return false;
  };
  return info.fieldNodes.some((f: FieldNode) => walk(f.selectionSet, false));
}

/** What a tagging request's selection reads of heat maps (TagScore.explain). */
export const taggingWants = (info: GraphQLResolveInfo) => ({
  heatmaps: selectsBelow(info, 'explain', ['heatmap', 'heatmapPng']),
  overlays: selectsBelow(info, 'explain', ['heatmapPng']),
});
