import type { ApolloServerPlugin, BaseContext } from '@apollo/server';
import { Kind, type DocumentNode, type OperationDefinitionNode, type SelectionSetNode } from 'graphql';
import { DEMO_MODEL_WARNING } from '../../core/demo-model.ts';

/**
 * The root fields whose answers hold the model's scores: tagging, and the library's stored
 * results and searches. Their answers carry the demo warning.
 */
const SCORING_FIELDS = new Set(['tagImage', 'tagImages', 'image', 'images', 'searchImages']);

export interface DemoModelWarningOptions {
  /** Whether the model pack in use has random weights (read per request: the engine owns it). */
  randomWeights(): boolean;
}

/**
 * On a pack of random weights, adds `extensions.warnings: [{ code: "DEMO_MODEL", message }]` to
 * every answer that holds the model's scores (tagging results, stored images' results, image
 * searches), so that no client mistakes demo tags for real ones. Other operations (vocabularies,
 * keys, modelInfo, jobs) are left as they are.
 */
export function demoModelWarning<C extends BaseContext>({ randomWeights }: DemoModelWarningOptions): ApolloServerPlugin<C> {
  return {
    async requestDidStart() {
      return {
        async willSendResponse({ operation, document, response }) {
          if (!operation || !document || response.body.kind !== 'single' || !randomWeights()) return;
          const result = response.body.singleResult;
          const data = result.data as Record<string, unknown> | null | undefined;
          if (!data || !scoringKeys(operation, document).some((key) => data[key] != null)) return;
          const warnings = Array.isArray(result.extensions?.warnings) ? result.extensions.warnings : [];
          result.extensions = { ...result.extensions, warnings: [...warnings, { ...DEMO_MODEL_WARNING }] };
        },
      };
    },
  };
}

/** Response keys (aliases included) of the operation's root fields that answer with scores. */
function scoringKeys(operation: OperationDefinitionNode, document: DocumentNode): string[] {
  if (operation.operation === 'subscription') return [];
  const fragments = new Map(document.definitions.flatMap((d) => (d.kind === Kind.FRAGMENT_DEFINITION ? [[d.name.value, d.selectionSet] as const] : [])));
  const keys: string[] = [];
  const visit = (set: SelectionSetNode, seen: Set<string>) => {
    for (const s of set.selections) {
      if (s.kind === Kind.FIELD) {
        if (SCORING_FIELDS.has(s.name.value)) keys.push(s.alias?.value ?? s.name.value);
      } else if (s.kind === Kind.INLINE_FRAGMENT) {
        visit(s.selectionSet, seen);
      } else if (!seen.has(s.name.value) && fragments.has(s.name.value)) {
        visit(fragments.get(s.name.value)!, new Set([...seen, s.name.value]));
      }
    }
  };
  visit(operation.selectionSet, new Set());
  return keys;
}
