// `--set path=value` overrides for mixture specs: applied to the parsed, env-expanded spec before validation,
// so an override is validated exactly like a value written in the file. Components are addressed by name.
import { parseDocument } from 'yaml';
import { SpecError } from '../core/errors.ts';

/** One step of an override path: a mapping key, a list index, or a list element addressed by its `name`. */
export type PathStep = { key: string } | { index: number };

export interface Override {
  /** The `--set` argument as given, for error messages. */
  text: string;
  steps: PathStep[];
  value: unknown;
}

const SEGMENT = /^([A-Za-z0-9_-]+)((?:\[\d+\])*)$/;

/** Renders steps the way spec errors name fields: `components[0].source.uris`, `components.recap.take`. */
export function formatSteps(steps: readonly PathStep[]): string {
  let out = '';
  for (const s of steps) out += 'index' in s ? `[${s.index}]` : out ? `.${s.key}` : s.key;
  return out;
}

/**
 * Parses `path=value`. The path is dot-separated keys with optional `[n]` indices (`components[0].source.uris`,
 * `components.recap.take.count`); the value is read as YAML (`100` is a number, `[a, b]` a list, `{count: 5}` a
 * mapping, `null` or nothing removes the field so its default applies).
 */
export function parseOverride(text: string): Override {
  const eq = text.indexOf('=');
  const where = `--set ${text}`;
  if (eq <= 0)
    throw new SpecError(where, '', "expected 'path=value' (e.g. seed=5 or components.recap.take.count=100)");
  const steps: PathStep[] = [];
  for (const segment of text.slice(0, eq).split('.')) {
    const m = SEGMENT.exec(segment);
    if (!m) {
      throw new SpecError(
        where,
        formatSteps(steps),
        `bad path segment '${segment}' (expected a field or component name, optionally followed by [index])`,
      );
    }
    steps.push({ key: m[1] });
    for (const idx of m[2].matchAll(/\[(\d+)\]/g)) steps.push({ index: Number(idx[1]) });
  }
  const doc = parseDocument(text.slice(eq + 1));
  if (doc.errors.length > 0) {
    throw new SpecError(
      where,
      formatSteps(steps),
      `value is not valid YAML: ${doc.errors[0].message.split('\n')[0]}`,
    );
  }
  return { text, steps, value: doc.toJS() };
}

function isMapping(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function namesOf(list: unknown[]): string {
  const names = list
    .map((e) => (isMapping(e) && typeof e.name === 'string' ? e.name : undefined))
    .filter(Boolean);
  return names.length > 0 ? names.join(', ') : 'none';
}

/**
 * Resolves the override's steps against `root` to the concrete path (names replaced by indices), creating missing
 * mappings on the way. Returns the container and the final key/index to assign.
 */
function locate(
  root: Record<string, unknown>,
  override: Override,
): { parent: Record<string, unknown> | unknown[]; last: string | number; resolved: PathStep[] } {
  const where = `--set ${override.text}`;
  const resolved: PathStep[] = [];
  let node: unknown = root;
  const steps = override.steps;
  for (let i = 0; i < steps.length; i++) {
    const step = steps[i];
    const isLast = i === steps.length - 1;
    let slot: string | number;
    if (Array.isArray(node)) {
      if ('index' in step) {
        if (step.index > node.length || (step.index === node.length && !isLast)) {
          throw new SpecError(
            where,
            formatSteps(resolved),
            `index ${step.index} is out of range (the list has ${node.length} ${node.length === 1 ? 'entry' : 'entries'})`,
          );
        }
        slot = step.index;
      } else {
        // A list addressed by name: the element whose `name` field matches (components.recap).
        const idx = node.findIndex((e) => isMapping(e) && e.name === step.key);
        if (idx < 0) {
          throw new SpecError(
            where,
            formatSteps(resolved),
            `no entry named '${step.key}' (names: ${namesOf(node)})`,
          );
        }
        slot = idx;
      }
      resolved.push({ index: slot });
    } else if (isMapping(node)) {
      if ('index' in step) {
        throw new SpecError(where, formatSteps(resolved), `[${step.index}] used on a mapping, not a list`);
      }
      slot = step.key;
      resolved.push({ key: slot });
    } else {
      throw new SpecError(where, formatSteps(resolved), `cannot set a field inside a ${typeof node} value`);
    }
    if (isLast) return { parent: node, last: slot, resolved };
    const container = node as Record<string | number, unknown>;
    if (container[slot] === undefined || container[slot] === null) {
      if ('index' in steps[i + 1]) {
        throw new SpecError(where, formatSteps(resolved), 'no list here to index into');
      }
      container[slot] = {};
    }
    node = container[slot];
  }
  throw new SpecError(where, '', 'empty path');
}

export interface AppliedOverride {
  text: string;
  /** The concrete field path written, with components by index (`components[1].take.count`). */
  path: string;
}

/**
 * Applies overrides in order to a deep copy of `data` (the parsed spec) and returns the copy plus the concrete
 * path each override wrote, so validation errors in overridden fields can name the `--set` that caused them.
 */
export function applyOverrides(
  data: unknown,
  overrides: readonly (string | Override)[],
): { data: unknown; applied: AppliedOverride[] } {
  if (overrides.length === 0) return { data, applied: [] };
  if (!isMapping(data))
    throw new SpecError('--set', '', 'the spec must be a mapping before fields can be set');
  const root = structuredClone(data);
  const applied: AppliedOverride[] = [];
  for (const o of overrides) {
    const override = typeof o === 'string' ? parseOverride(o) : o;
    const { parent, last, resolved } = locate(root, override);
    (parent as Record<string | number, unknown>)[last] = structuredClone(override.value);
    applied.push({ text: override.text, path: formatSteps(resolved) });
  }
  return { data: root, applied };
}
