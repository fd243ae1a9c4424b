/**
 * One image's scores → the tags a caller sees: ranking (threshold, minScore, topK), names in a
 * language, and explanations (the descriptions that weighed most). The API's tagging service
 * and the command line both shape results here, so the two cannot drift apart; it needs
 * nothing of the database, only the tags in bank order.
 */
import { rankTags, topDescriptions, type TagScores } from '../inference/index.ts';

/** Descriptions shown per tag when a result is explained. */
export const EXPLAIN_TOP = 3;

/** What shaping needs of the tag at one bank index. */
export interface ResultTag<D = unknown> {
  readonly name: string;
  /** Names in other languages, keyed by lower-case language tag ('zh', 'pt-br'). */
  readonly names?: Readonly<Record<string, string>>;
  /** The descriptions behind the tag's bank rows, in row order: explanations point into them. */
  readonly descriptions?: readonly D[];
}

export interface ResultOptions {
  /** One threshold for every tag instead of each tag's own. */
  threshold?: number;
  /** Only tags above their threshold. */
  passedOnly?: boolean;
  /** Only tags with at least this probability. */
  minScore?: number;
  /** The best k after the filters. */
  topK?: number;
  /** Name tags in this language: its own name, else its base language's, else the tag's name. */
  language?: string;
  /** Add each tag's top descriptions; needs scores computed with `explain`. */
  explain?: boolean;
}

type DescriptionOf<T extends ResultTag> = NonNullable<T['descriptions']>[number];

export interface Explanation<D> {
  /** Index of the description among the tag's descriptions. */
  index: number;
  /** That description, when the vocabulary has it. */
  description: D | undefined;
  weight: number;
}

export interface TagResult<T extends ResultTag> {
  /** The tag as given, for fields shaping does not know (ids, sources). */
  tag: T;
  /** Bank index. */
  index: number;
  name: string;
  probability: number;
  threshold: number;
  logit: number;
  passed: boolean;
  /** Best descriptions first; null unless explanations were asked for and computed. */
  explanation: Explanation<DescriptionOf<T>>[] | null;
}

/** Ranks an image's scores (best first) and names and explains the tags that remain. */
export function tagResults<T extends ResultTag>(scores: TagScores, tags: { at(index: number): T | undefined }, options: ResultOptions = {}): TagResult<T>[] {
  const { threshold, passedOnly, minScore, topK } = options;
  const language = options.language?.toLowerCase();
  const explain = options.explain === true && scores.explained !== undefined;
  return rankTags(scores, { threshold, passedOnly, minScore, topK }).map((r) => {
    const tag = tags.at(r.index)!;
    return {
      tag,
      index: r.index,
      name: nameIn(tag, language),
      probability: r.probability,
      threshold: r.threshold,
      logit: r.logit,
      passed: r.passed,
      explanation: explain
        ? topDescriptions(scores, r.index, EXPLAIN_TOP).map((d) => ({
            index: d.description,
            description: tag.descriptions?.[d.description] as DescriptionOf<T> | undefined,
            weight: d.weight,
          }))
        : null,
    };
  });
}

/** A tag's name in a language (e.g. 'zh', 'pt-br'), falling back to its base language, then to its name. */
export function nameIn(tag: ResultTag, language: string | undefined): string {
  if (!language || language === 'en') return tag.name;
  return tag.names?.[language] ?? tag.names?.[language.split('-')[0]!] ?? tag.name;
}
