// Loading spec files: YAML → `${VAR}` expansion → `--set` overrides → strict zod validation, for the mixture spec
// and for any other spec file the CLI reads. Errors name the file, the field path and the line.
import { LineCounter, parseDocument } from 'yaml';
import type { z } from 'zod';
import { errorMessage, SpecError } from '../core/errors.ts';
import { storageFor } from '../core/storage/index.ts';
import {
  type ComponentTransformOptions,
  ComponentTransformOptionsSchema,
} from '../transforms/component-options.ts';
import { type Env, expandEnvInDocument } from './expand-env.ts';
import { applyOverrides } from './overrides.ts';
import { describeValue, SpecValidationError, specErrorMap, toSpecIssue } from './spec-errors.ts';
import { type MixtureSpec, MixtureSpecSchema } from './spec-schema.ts';

export interface SpecOptions {
  /** Where the text came from, for messages (a path or URI). */
  file: string;
  /** Variables for `${VAR}` expansion. Pass process.env explicitly; tests pass their own. */
  env: Env;
  /** `--set path=value` overrides, applied in order after expansion and before validation. */
  set?: readonly string[];
}

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

/**
 * Parses, expands, overrides and validates a spec file's text against `schema`. `expected` describes the
 * top-level mapping for the message when the document is not one; `emptyIsMapping` reads an empty file as `{}`.
 * Throws SpecError / SpecValidationError.
 */
export function parseSpecText<S extends z.ZodType>(
  schema: S,
  text: string,
  options: SpecOptions & { expected: string; emptyIsMapping?: boolean },
): z.output<S> {
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
  const js = doc.toJS({ maxAliasCount: 100 }) as unknown;
  const raw = js === null && doc.contents === null && options.emptyIsMapping ? {} : js;
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new SpecError(file, '', `expected a mapping with ${options.expected}, got ${describeValue(raw)}`);
  }
  const { data, applied } = applyOverrides(raw, options.set ?? []);
  const result = schema.safeParse(dropNulls(data), { error: specErrorMap, reportInput: true });
  if (result.success) return result.data;
  throw new SpecValidationError(
    file,
    result.error.issues.map((i) => toSpecIssue(i, { doc, lines, applied })),
  );
}

/** Parses, expands, overrides and validates a mixture spec's text. */
export function parseSpec(text: string, options: SpecOptions): MixtureSpec {
  return parseSpecText(MixtureSpecSchema, text, {
    ...options,
    expected: 'name, seed, output and components',
  });
}

/** The text of a spec file at a local path or an s3:// URI (UTF-8). */
async function readSpecText(uri: string): Promise<string> {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(await storageFor(uri).readAll(uri));
  } catch (err) {
    throw new SpecError(uri, '', `cannot read the spec: ${errorMessage(err)}`, { cause: err });
  }
}

/** Reads a mixture spec from a local path or an s3:// URI, then parseSpec. */
export async function loadSpec(uri: string, options: Omit<SpecOptions, 'file'>): Promise<MixtureSpec> {
  return parseSpec(await readSpecText(uri), { ...options, file: uri });
}

/** Reads a per-component options file (`{transform, filters, images, seed}`, what `sources read --spec` takes). */
export async function loadComponentOptions(
  uri: string,
  options: Omit<SpecOptions, 'file'>,
): Promise<ComponentTransformOptions> {
  return parseSpecText(ComponentTransformOptionsSchema, await readSpecText(uri), {
    ...options,
    file: uri,
    expected: 'transform, filters, images and seed',
    emptyIsMapping: true,
  });
}
