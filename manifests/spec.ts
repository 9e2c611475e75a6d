// The mixture spec: YAML → `${VAR}` expansion → `--set` overrides → strict zod validation. Errors name the file,
// the field path, the line and what was expected; the resolved spec has a stable hash for the manifest.
import { createHash } from 'node:crypto';
import { isNode, LineCounter, parseDocument } from 'yaml';
import { z } from 'zod';
import { errorMessage, SpecError } from '../core/errors.ts';
import { storageFor } from '../core/storage/index.ts';
import { SOURCE_FORMATS } from '../sources/types.ts';
import { FilterOptionsSchema, ImageOptionsSchema, TRANSFORM_KINDS } from '../transforms/component-options.ts';
import { type Env, expandEnvInDocument } from './expand-env.ts';
import { type AppliedOverride, applyOverrides } from './overrides.ts';

export const COMPRESSIONS = ['zstd', 'snappy', 'gzip', 'none'] as const;

/** Formats whose records reference image files, so an image root means something for them. */
const REFERENCED_IMAGE_FORMATS: readonly string[] = ['llava-pretrain', 'llava-json', 'cambrian'];

const SourceSchema = z
  .strictObject({
    format: z.enum(SOURCE_FORMATS),
    uris: z
      .array(z.string().min(1, 'expected a non-empty URI or glob'))
      .min(1, 'expected at least one URI or glob'),
    image_root: z.string().min(1, 'expected a non-empty folder, s3:// prefix or archive').optional(),
  })
  .superRefine((source, ctx) => {
    if (source.image_root !== undefined && !REFERENCED_IMAGE_FORMATS.includes(source.format)) {
      ctx.addIssue({
        code: 'custom',
        path: ['image_root'],
        message: `'${source.format}' embeds its images; image_root is only used by ${REFERENCED_IMAGE_FORMATS.join(', ')}`,
      });
    }
  });

const TakeSchema = z
  .strictObject({
    count: z.int().positive('expected a positive number of samples').optional(),
    fraction: z
      .number()
      .gt(0, 'expected a fraction in (0, 1]')
      .lte(1, 'expected a fraction in (0, 1]')
      .optional(),
  })
  .superRefine((take, ctx) => {
    if ((take.count === undefined) === (take.fraction === undefined)) {
      ctx.addIssue({ code: 'custom', message: 'expected exactly one of {count: N} or {fraction: f}' });
    }
  });

const ComponentSchema = z.strictObject({
  name: z.string().regex(/^[a-z0-9_-]+$/, 'expected a name of lowercase letters, digits, _ and -'),
  source: SourceSchema,
  // Defaults are filled in (rather than left absent) so that writing a default out does not change the spec hash.
  transform: z.enum(TRANSFORM_KINDS).default('none'),
  filters: FilterOptionsSchema.prefault({}),
  take: TakeSchema.optional(),
  repeat: z.int().min(1, 'expected at least 1 copy').default(1),
});

const OutputSchema = z.strictObject({
  shard_rows: z.int().positive('expected a positive number of rows'),
  compression: z.enum(COMPRESSIONS).default('zstd'),
  max_shard_bytes: z.int().positive('expected a positive number of bytes').optional(),
});

export const MixtureSpecSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'expected a name of letters, digits, ., _ and -'),
  description: z.string().optional(),
  seed: z.int().min(0, 'expected a seed ≥ 0'),
  output: OutputSchema,
  images: ImageOptionsSchema.prefault({}),
  components: z
    .array(ComponentSchema)
    .min(1, 'expected at least one component')
    .superRefine((components, ctx) => {
      const first = new Map<string, number>();
      components.forEach((c, i) => {
        const j = first.get(c.name);
        if (j === undefined) first.set(c.name, i);
        else
          ctx.addIssue({
            code: 'custom',
            path: [i, 'name'],
            message: `duplicate component name '${c.name}' (also components[${j}])`,
          });
      });
    }),
});

export type MixtureSpec = z.output<typeof MixtureSpecSchema>;
export type ComponentSpec = MixtureSpec['components'][number];
export type TakeSpec = NonNullable<ComponentSpec['take']>;

/** How many of `n` candidates a component's `take` keeps (before `repeat`): count, round(fraction·n), or all. */
export function takeSize(take: ComponentSpec['take'], n: number): number {
  if (take?.count !== undefined) return Math.min(take.count, n);
  if (take?.fraction !== undefined) return Math.round(take.fraction * n);
  return n;
}

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

export interface SpecOptions {
  /** Where the text came from, for messages (a path or URI). */
  file: string;
  /** Variables for `${VAR}` expansion. Pass process.env explicitly; tests pass their own. */
  env: Env;
  /** `--set path=value` overrides, applied in order after expansion and before validation. */
  set?: readonly string[];
}

/** Field path as users write it: `components[2].take.count`. */
function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out ? `.${String(p)}` : String(p);
  return out;
}

function describeValue(x: unknown): string {
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
const specErrorMap: z.core.$ZodErrorMap = (issue) => {
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

/** Drops mapping entries whose value is null, so `field: ~`, an empty `${X:-}` or `--set f=null` mean "absent". */
function dropNulls(x: unknown): unknown {
  if (Array.isArray(x)) return x.map(dropNulls);
  if (x && typeof x === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(x)) if (v !== null) out[k] = dropNulls(v);
    return out;
  }
  return x;
}

/** Parses, expands, overrides and validates a spec's text. Throws SpecError / SpecValidationError. */
export function parseSpec(text: string, options: SpecOptions): MixtureSpec {
  const { file, env } = options;
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  if (doc.errors.length > 0) {
    // Only the first: later YAML errors are mostly consequences of it.
    const e = doc.errors[0];
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the hint quotes spec syntax
    const flowHint = ' (inside [...] or {...}, quote values holding ${...}: write "${VAR}")';
    const hint = /flow|Missing ,/.test(e.message) && text.includes('${') ? flowHint : '';
    throw new SpecValidationError(file, [
      {
        path: '',
        message: `invalid YAML: ${e.message.split('\n')[0]}${hint}`,
        line: lines.linePos(e.pos[0]).line,
      },
    ]);
  }
  expandEnvInDocument(doc, env, file, lines);
  const raw = doc.toJS({ maxAliasCount: 100 }) as unknown;
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new SpecError(
      file,
      '',
      `expected a mapping with name, seed, output and components, got ${describeValue(raw)}`,
    );
  }
  const { data, applied } = applyOverrides(raw, options.set ?? []);
  const result = MixtureSpecSchema.safeParse(dropNulls(data), { error: specErrorMap, reportInput: true });
  if (result.success) return result.data;
  const issues = result.error.issues.map((i) => toSpecIssue(i, doc, lines, applied));
  throw new SpecValidationError(file, issues);
}

function toSpecIssue(
  issue: z.core.$ZodIssue,
  doc: ReturnType<typeof parseDocument>,
  lines: LineCounter,
  applied: readonly AppliedOverride[],
): SpecIssue {
  const path = [...issue.path];
  // One unknown key: name the key itself so the path points at the offending field.
  if (issue.code === 'unrecognized_keys' && issue.keys.length === 1) path.push(issue.keys[0]);
  const pathText = formatPath(path);
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

/** Reads a spec from a local path or an s3:// URI, then parseSpec. */
export async function loadSpec(uri: string, options: Omit<SpecOptions, 'file'>): Promise<MixtureSpec> {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(await storageFor(uri).readAll(uri));
  } catch (err) {
    throw new SpecError(uri, '', `cannot read the spec: ${errorMessage(err)}`);
  }
  return parseSpec(text, { ...options, file: uri });
}

/**
 * JSON with object keys sorted at every level and no whitespace: the same value always gives the same text,
 * whatever order its keys were written in. Throws on values JSON cannot represent exactly.
 */
export function canonicalJson(x: unknown): string {
  if (x === null || typeof x === 'boolean' || typeof x === 'string') return JSON.stringify(x);
  if (typeof x === 'number') {
    if (!Number.isFinite(x)) throw new TypeError(`canonicalJson: ${x} has no JSON form`);
    return JSON.stringify(x);
  }
  if (Array.isArray(x)) return `[${x.map((v) => (v === undefined ? 'null' : canonicalJson(v))).join(',')}]`;
  if (typeof x === 'object') {
    const entries = Object.entries(x as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  throw new TypeError(`canonicalJson: a ${typeof x} has no JSON form`);
}

/** sha256 (hex) of the canonical JSON of a resolved, validated spec: what the manifest records. */
export function specHash(spec: MixtureSpec): string {
  return createHash('sha256').update(canonicalJson(spec)).digest('hex');
}
