// `${VAR}` / `${VAR:-default}` expansion: the string function, its errors, and expansion inside parsed YAML.
// biome-ignore-all lint/suspicious/noTemplateCurlyInString: these strings are spec text holding ${VAR} references
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { LineCounter, parseDocument } from 'yaml';
import { SpecError } from '../../core/errors.ts';
import { expandEnv, expandEnvInDocument, resolvePlainScalar } from '../../manifests/expand-env.ts';

describe('expandEnv', () => {
  it('substitutes set variables and applies defaults to unset or empty ones', () => {
    const env = { DATA: '/mnt/d', EMPTY: '' };
    assert.equal(expandEnv('${DATA}/recap/*.parquet', env), '/mnt/d/recap/*.parquet');
    assert.equal(expandEnv('${MISSING:-data}/x', env), 'data/x');
    assert.equal(expandEnv('${EMPTY:-fallback}', env), 'fallback');
    assert.equal(expandEnv('${DATA:-unused}', env), '/mnt/d');
    assert.equal(expandEnv('${MISSING:-}', env), '');
    assert.equal(expandEnv('a${DATA}b${DATA}c', env), 'a/mnt/db/mnt/dc');
  });

  it('expands nested references inside defaults', () => {
    const tpl = '${RECAP:-${DATA:-data}/recap}/x';
    assert.equal(expandEnv(tpl, {}), 'data/recap/x');
    assert.equal(expandEnv(tpl, { DATA: 's3://b/root' }), 's3://b/root/recap/x');
    assert.equal(expandEnv(tpl, { RECAP: '/r', DATA: 'ignored' }), '/r/x');
  });

  it('keeps $ that is not a reference and reads $${ as a literal ${', () => {
    assert.equal(expandEnv('cost $5 and $HOME', {}), 'cost $5 and $HOME');
    assert.equal(expandEnv('$${DATA}', { DATA: 'x' }), '${DATA}');
    assert.equal(expandEnv('tail$', {}), 'tail$');
  });

  it('names the variable, file, field and line when an unset variable has no default', () => {
    assert.throws(
      () =>
        expandEnv('${RECAP_DIR}/x', {}, { file: 'mix.yaml', path: 'components[0].source.uris[0]', line: 7 }),
      (err: unknown) => {
        assert.ok(err instanceof SpecError);
        assert.equal(err.file, 'mix.yaml');
        assert.equal(err.path, 'components[0].source.uris[0]');
        assert.match(err.message, /RECAP_DIR is not set/);
        assert.match(err.message, /line 7/);
        return true;
      },
    );
  });

  it('rejects malformed references', () => {
    assert.throws(() => expandEnv('${DATA', {}), /unterminated/);
    assert.throws(() => expandEnv('${1X}', {}), /not a variable reference/);
    assert.throws(() => expandEnv('${A B}', {}), /not a variable reference/);
    assert.throws(() => expandEnv('${}', {}), /not a variable reference/);
  });

  it('inserts values verbatim: a value is never expanded again', () => {
    fc.assert(
      fc.property(fc.string(), (value) => {
        assert.equal(expandEnv('${V}', { V: value }), value);
        assert.equal(expandEnv('${UNSET:-${V}}', { V: value }), value);
      }),
    );
  });

  it('leaves text without references unchanged', () => {
    fc.assert(
      fc.property(
        fc.string().filter((s) => !s.includes('${')),
        (s) => {
          assert.equal(expandEnv(s, { A: 'x' }), s);
        },
      ),
    );
  });
});

describe('resolvePlainScalar', () => {
  it('reads core-schema numbers, booleans and nulls, and leaves other text a string', () => {
    assert.equal(resolvePlainScalar('17'), 17);
    assert.equal(resolvePlainScalar('-3'), -3);
    assert.equal(resolvePlainScalar('0.5'), 0.5);
    assert.equal(resolvePlainScalar('1e3'), 1000);
    assert.equal(resolvePlainScalar('0x10'), 16);
    assert.equal(resolvePlainScalar('true'), true);
    assert.equal(resolvePlainScalar('False'), false);
    assert.equal(resolvePlainScalar(''), null);
    assert.equal(resolvePlainScalar('~'), null);
    assert.equal(resolvePlainScalar('data/x.json'), 'data/x.json');
    assert.equal(resolvePlainScalar('1.2.3'), '1.2.3');
  });
});

describe('expandEnvInDocument', () => {
  function expand(text: string, env: Record<string, string>): unknown {
    const lines = new LineCounter();
    const doc = parseDocument(text, { lineCounter: lines });
    assert.deepEqual(doc.errors, []);
    expandEnvInDocument(doc, env, 'spec.yaml', lines);
    return doc.toJS();
  }

  it('types unquoted values like YAML would and keeps quoted values strings', () => {
    const out = expand('seed: ${SEED:-17}\nname: "${SEED:-17}"\nflag: ${F:-true}\n', {});
    assert.deepEqual(out, { seed: 17, name: '17', flag: true });
  });

  it('keeps values holding YAML syntax as plain strings (no text substitution into the YAML)', () => {
    const out = expand('uris: ["${D}/*.parquet"]\nroot: ${D}\n', { D: 'a: b # c\n- [x]' });
    assert.deepEqual(out, { uris: ['a: b # c\n- [x]/*.parquet'], root: 'a: b # c\n- [x]' });
  });

  it('does not expand mapping keys', () => {
    assert.deepEqual(expand('"${K}": 1\n', {}), { '${K}': 1 });
  });

  it('reports the field path and line of an unset variable', () => {
    const text = 'name: m\ncomponents:\n  - name: a\n    source:\n      uris: [x, "${NOPE}/y"]\n';
    assert.throws(
      () => expand(text, {}),
      (err: unknown) => {
        assert.ok(err instanceof SpecError);
        assert.equal(err.file, 'spec.yaml');
        assert.equal(err.path, 'components[0].source.uris[1]');
        assert.match(err.message, /NOPE is not set.*line 5/);
        return true;
      },
    );
  });
});
