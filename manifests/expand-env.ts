// `${VAR}` / `${VAR:-default}` expansion for mixture specs. Expansion runs on parsed YAML string values (never
// on raw YAML text), so a value holding `:`, `#`, quotes or newlines cannot change the structure of the spec.
import { type Document, isPair, isScalar, isSeq, type LineCounter, Scalar, visit } from 'yaml';
import { SpecError } from '../core/errors.ts';

export type Env = Readonly<Record<string, string | undefined>>;

/** Where a string came from, for error messages. */
export interface ExpandLocation {
  file: string;
  /** Field path, e.g. `components[2].source.uris[0]`. */
  path?: string;
  /** 1-based line in `file`. */
  line?: number;
}

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

function fail(where: ExpandLocation | undefined, message: string): never {
  const line = where?.line !== undefined ? ` (line ${where.line})` : '';
  throw new SpecError(where?.file ?? '<string>', where?.path ?? '', `${message}${line}`);
}

/** Index of the `}` closing the `${` whose body starts at `from`, honouring nested `${...}` in defaults. */
function closingBrace(text: string, from: number): number {
  let depth = 1;
  for (let i = from; i < text.length; i++) {
    if (text[i] === '$' && text[i + 1] === '{') {
      depth++;
      i++;
    } else if (text[i] === '}') {
      depth--;
      if (depth === 0) return i;
    }
  }
  return -1;
}

/**
 * Expands `${VAR}` and `${VAR:-default}` in `text` from `env`. Pure: the result depends only on (text, env).
 * - `${VAR:-default}` uses `default` when VAR is unset or empty (shell semantics); the default may itself
 *   contain `${...}` (e.g. `${RECAP:-${DATA:-data}/recap}`).
 * - `${VAR}` with VAR unset is an error naming the variable and the location.
 * - `$${` is a literal `${`; a `$` not followed by `{` is kept as is.
 */
export function expandEnv(text: string, env: Env, where?: ExpandLocation): string {
  let out = '';
  let i = 0;
  while (i < text.length) {
    const dollar = text.indexOf('$', i);
    if (dollar < 0) {
      out += text.slice(i);
      break;
    }
    out += text.slice(i, dollar);
    if (text.startsWith('$${', dollar)) {
      out += '${';
      i = dollar + 3;
      continue;
    }
    if (text[dollar + 1] !== '{') {
      out += '$';
      i = dollar + 1;
      continue;
    }
    const close = closingBrace(text, dollar + 2);
    if (close < 0) fail(where, `unterminated '\${' in '${text}'`);
    const body = text.slice(dollar + 2, close);
    const sep = body.indexOf(':-');
    const name = sep < 0 ? body : body.slice(0, sep);
    if (!NAME.test(name)) {
      fail(where, `'\${${body}}' is not a variable reference (expected \${NAME} or \${NAME:-default})`);
    }
    const value = env[name];
    if (sep >= 0) {
      out += value !== undefined && value !== '' ? value : expandEnv(body.slice(sep + 2), env, where);
    } else if (value === undefined) {
      fail(
        where,
        `environment variable ${name} is not set (set it, or write \${${name}:-default} in the spec)`,
      );
    } else {
      out += value;
    }
    i = close + 1;
  }
  return out;
}

/**
 * The YAML 1.2 core-schema reading of an unquoted scalar. An unquoted `${SEED:-17}` therefore expands to the
 * number 17, exactly as if `17` had been written; quote the value to keep it a string.
 */
export function resolvePlainScalar(text: string): string | number | boolean | null {
  if (/^(|~|null|Null|NULL)$/.test(text)) return null;
  if (/^(true|True|TRUE)$/.test(text)) return true;
  if (/^(false|False|FALSE)$/.test(text)) return false;
  if (/^[-+]?[0-9]+$/.test(text)) return Number(text);
  if (/^0o[0-7]+$/.test(text)) return Number.parseInt(text.slice(2), 8);
  if (/^0x[0-9a-fA-F]+$/.test(text)) return Number.parseInt(text.slice(2), 16);
  if (/^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$/.test(text)) return Number(text);
  if (/^[-+]?\.(inf|Inf|INF)$/.test(text)) return text.startsWith('-') ? -Infinity : Infinity;
  if (/^\.(nan|NaN|NAN)$/.test(text)) return Number.NaN;
  return text;
}

/** The field path of a node from visit()'s ancestor chain, e.g. `components[2].source.uris[0]`. */
function fieldPath(ancestors: readonly unknown[], node: unknown): string {
  const chain = [...ancestors, node];
  let out = '';
  for (let i = 0; i < chain.length - 1; i++) {
    const a = chain[i];
    if (isPair(a)) {
      const name = isScalar(a.key) ? String(a.key.value) : String(a.key);
      out += out ? `.${name}` : name;
    } else if (isSeq(a)) {
      out += `[${a.items.indexOf(chain[i + 1])}]`;
    }
  }
  return out;
}

/**
 * Expands every string value of a parsed spec document in place (mapping keys are left alone). Unquoted values
 * that contained a reference are re-read as YAML scalars (see resolvePlainScalar).
 */
export function expandEnvInDocument(doc: Document, env: Env, file: string, lines?: LineCounter): void {
  visit(doc, {
    Scalar(key, node, path) {
      if (key === 'key' || typeof node.value !== 'string' || !node.value.includes('$')) return;
      const line = lines && node.range ? lines.linePos(node.range[0]).line : undefined;
      const expanded = expandEnv(node.value, env, { file, line, path: fieldPath(path, node) });
      if (expanded === node.value) return;
      const plain = node.type === Scalar.PLAIN || node.type === undefined;
      const value = plain && node.value.includes('${') ? resolvePlainScalar(expanded) : expanded;
      const replacement = new Scalar(value);
      replacement.range = node.range;
      return replacement;
    },
  });
}
