// How spec problems are worded: zod issues → field paths as users write them (`components[2].take.count`),
// messages in spec terms, and the YAML line of the field (or of the --set that produced it).
import { isNode, type LineCounter, type parseDocument } from 'yaml';
import type { z } from 'zod';
import { SpecError } from '../core/errors.ts';
import type { AppliedOverride } from './overrides.ts';

/** One validation problem: field path (`components[2].take.count`), message, and the line when known. */
export interface SpecIssue {
  path: string;
  message: string;
  line?: number;
}

/** A spec failed validation. Lists every problem, not only the first. */
export class SpecValidationError extends SpecError {
  override name = 'SpecValidationError';
  constructor(
    file: string,
    readonly issues: SpecIssue[],
  ) {
    const at = (i: SpecIssue) => (i.line !== undefined ? ` (line ${i.line})` : '');
    super(file, issues[0].path, `${issues[0].message}${at(issues[0])}`);
    if (issues.length > 1) {
      this.message = `${file}: ${issues.length} problems\n${issues
        .map((i) => `  ${i.path || '(top level)'}: ${i.message}${at(i)}`)
        .join('\n')}`;
    }
  }
}

/** Field path as users write it: `components[2].take.count`. */
function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out ? `.${String(p)}` : String(p);
  return out;
}

export function describeValue(x: unknown): string {
  if (x === null) return 'null';
  if (Array.isArray(x)) return 'a list';
  if (typeof x === 'object') return 'a mapping';
  if (typeof x === 'string') return `'${x.length > 60 ? `${x.slice(0, 57)}...` : x}'`;
  return String(x);
}

function shapeKeys(inst: unknown): string[] | undefined {
  const shape = (inst as { _zod?: { def?: { shape?: Record<string, unknown> } } } | undefined)?._zod?.def
    ?.shape;
  return shape ? Object.keys(shape) : undefined;
}

/** zod's type names as spec authors know them. */
const TYPE_NAMES: Record<string, string> = {
  int: 'a whole number',
  number: 'a number',
  string: 'a string',
  boolean: 'true or false',
  object: 'a mapping',
  array: 'a list',
};

/** Messages for zod's built-in issues; messages given in the schema take precedence over this map. */
export const specErrorMap: z.core.$ZodErrorMap = (issue) => {
  switch (issue.code) {
    case 'invalid_type': {
      // z.int() reports `number`; its format says it wanted a whole one.
      const format = (issue.inst as { _zod?: { def?: { format?: string } } } | undefined)?._zod?.def?.format;
      const expected = TYPE_NAMES[format?.includes('int') ? 'int' : issue.expected] ?? issue.expected;
      return issue.input === undefined
        ? `missing required field (expected ${expected})`
        : `expected ${expected}, got ${describeValue(issue.input)}`;
    }
    case 'unrecognized_keys': {
      const allowed = shapeKeys(issue.inst);
      const keys = issue.keys.map((k) => `'${k}'`).join(', ');
      return `unknown field${issue.keys.length > 1 ? 's' : ''} ${keys}${allowed ? ` (expected one of: ${allowed.join(', ')})` : ''}`;
    }
    case 'invalid_value':
      return `expected one of ${issue.values.map((v) => String(v)).join(', ')}, got ${describeValue(issue.input)}`;
    case 'too_small':
      if (issue.origin === 'array') return `expected at least ${issue.minimum} entries`;
      if (issue.origin === 'string') return `expected at least ${issue.minimum} characters`;
      return `expected a value ${issue.inclusive ? '≥' : '>'} ${issue.minimum}, got ${describeValue(issue.input)}`;
    case 'too_big':
      if (issue.origin === 'array') return `expected at most ${issue.maximum} entries`;
      if (issue.origin === 'string') return `expected at most ${issue.maximum} characters`;
      return `expected a value ${issue.inclusive ? '≤' : '<'} ${issue.maximum}, got ${describeValue(issue.input)}`;
    default:
      return undefined;
  }
};

/** Where a validated value came from: the YAML document (for lines) and the --set overrides applied to it. */
export interface SpecSource {
  doc: ReturnType<typeof parseDocument>;
  lines: LineCounter;
  applied: readonly AppliedOverride[];
}

/** One zod issue as a SpecIssue; without a source (command-line values) it has no line. */
export function toSpecIssue(issue: z.core.$ZodIssue, source?: SpecSource): SpecIssue {
  const path = [...issue.path];
  // One unknown key: name the key itself so the path points at the offending field.
  if (issue.code === 'unrecognized_keys' && issue.keys.length === 1) path.push(issue.keys[0]);
  const pathText = formatPath(path);
  if (!source) return { path: pathText, message: issue.message };
  const { doc, lines, applied } = source;
  const fromSet = [...applied]
    .reverse()
    .find(
      (a) => pathText === a.path || pathText.startsWith(`${a.path}.`) || pathText.startsWith(`${a.path}[`),
    );
  if (fromSet) return { path: pathText, message: `${issue.message} (from --set ${fromSet.text})` };
  return { path: pathText, message: issue.message, line: lineOf(doc, lines, path) };
}

/** Line of the deepest node of `path` present in the document (the field itself, or its nearest parent). */
function lineOf(
  doc: ReturnType<typeof parseDocument>,
  lines: LineCounter,
  path: readonly PropertyKey[],
): number | undefined {
  for (let n = path.length; n >= 0; n--) {
    const node = doc.getIn(path.slice(0, n) as (string | number)[], true);
    if (isNode(node) && node.range) return lines.linePos(node.range[0]).line;
  }
  return undefined;
}
