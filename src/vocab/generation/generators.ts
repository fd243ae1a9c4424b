import { MAX_TEMPLATE_DESCRIPTIONS, templateDescriptions } from './templates.ts';

export type GeneratedSource = 'LLM' | 'TEMPLATE';

export interface GeneratedDescription {
  text: string;
  source: GeneratedSource;
  /** The model, for LLM descriptions. */
  model?: string;
  /** The user prompt that produced it, for LLM descriptions. */
  prompt?: string;
}

export interface GenerationResult {
  descriptions: GeneratedDescription[];
  /** Answers thrown away, by reason (LLM only); `markup`: HTML that would not come off. */
  dropped: { empty: number; refusal: number; markup: number; duplicate: number };
  /** Answers cut to the text encoder's context. */
  cut: number;
  /** LLM only: what the generation asked of the endpoint. */
  llm?: LlmUsage;
}

/** Requests sent for one tag (retries included) and the tokens the endpoint reported (null: it reported none). */
export interface LlmUsage {
  calls: number;
  tokens: number | null;
}

const usageOfFailures = new WeakMap<object, LlmUsage>();

/** Gives a failed generation's error what it asked of the endpoint, so that usage counts it too. */
export function withLlmUsage(e: unknown, usage: LlmUsage): unknown {
  if (typeof e === 'object' && e !== null && usage.calls > 0) usageOfFailures.set(e, usage);
  return e;
}

/** What the generation that threw `e` asked of the endpoint (none known: undefined). */
export const llmUsageOf = (e: unknown): LlmUsage | undefined => (typeof e === 'object' && e !== null ? usageOfFailures.get(e) : undefined);

/** Where new descriptions come from: an LLM, or CLIP's prompt templates offline. */
export interface DescriptionGenerator {
  /** `llm:<model>` or `template`: what the API reports. */
  readonly name: string;
  readonly kind: 'llm' | 'template';
  /** Up to `count` descriptions of the tag (fewer when the generator has no more to give). */
  generate(tagName: string, count: number, options?: { signal?: AbortSignal }): Promise<GenerationResult>;
}

/**
 * The model a generator asks, as a job records it (`llm:<model>` → `<model>`); null for the
 * templates. A job made here runs only on a replica whose generator has the same model.
 */
export const modelOf = (generator: DescriptionGenerator | undefined): string | null =>
  generator?.kind === 'llm' ? generator.name.slice('llm:'.length) : null;

/**
 * A generation that will not succeed by retrying (every answer refused or empty); the job
 * marks the tag FAILED with this message.
 */
export class GenerationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GenerationError';
  }
}

/**
 * CLIP's prompt-template ensemble: "a photo of a {tag}." then CLIP's ImageNet templates in
 * their published order (templates.ts), deterministic and offline. At most 80.
 */
export class TemplateGenerator implements DescriptionGenerator {
  readonly name = 'template';
  readonly kind = 'template' as const;

  async generate(tagName: string, count: number): Promise<GenerationResult> {
    const n = Math.min(MAX_TEMPLATE_DESCRIPTIONS, Math.max(1, count));
    return {
      descriptions: templateDescriptions(tagName, n).map((text) => ({ text, source: 'TEMPLATE' })),
      dropped: { empty: 0, refusal: 0, markup: 0, duplicate: 0 },
      cut: 0,
    };
  }
}
