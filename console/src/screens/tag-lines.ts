import type { TagInput } from '../generated/graphql.ts';

/** One pasted or uploaded line: the tag it asks for, or why it cannot be sent. */
export type TagLine = { text: string; input: TagInput } | { text: string; problem: string };

/** Splits one CSV record; double quotes enclose fields with commas, "" is a quote. */
export function csvFields(line: string): string[] {
  const fields: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quoted && c === '"' && line[i + 1] === '"') {
      field += '"';
      i++;
    } else if (c === '"') {
      quoted = !quoted;
    } else if (c === ',' && !quoted) {
      fields.push(field.trim());
      field = '';
    } else {
      field += c;
    }
  }
  fields.push(field.trim());
  return fields;
}

/**
 * Lines as `name[,threshold[,alias|alias…]]`; blank lines are skipped, and a first line
 * `name,…` is taken for a CSV header.
 */
export function parseTagLines(text: string): TagLine[] {
  const lines = text.split(/\r?\n/).filter((l) => l.trim());
  if (lines[0] && /^\s*"?name"?\s*(,|$)/i.test(lines[0])) lines.shift();
  return lines.map((line) => {
    const [name = '', threshold, aliases] = csvFields(line);
    const input: TagInput = { name };
    if (threshold) {
      const t = Number(threshold);
      if (!Number.isFinite(t)) return { text: line, problem: `the threshold “${threshold}” is not a number` };
      input.threshold = t;
    }
    if (aliases) input.aliases = aliases.split('|').map((a) => a.trim()).filter(Boolean);
    return { text: line, input };
  });
}
