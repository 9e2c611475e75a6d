// `--set path=value`: path parsing, components by name or index, YAML values, and errors naming the override.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SpecError } from '../../core/errors.ts';
import { applyOverrides, parseOverride } from '../../manifests/overrides.ts';

const spec = () => ({
  name: 'm',
  seed: 1,
  output: { shard_rows: 10 },
  components: [
    { name: 'recap', source: { format: 'llava-recap', uris: ['a'] } },
    { name: 'docmatix', source: { format: 'docmatix', uris: ['b'] }, take: { fraction: 0.5 } },
  ],
});

function throwsSpecError(fn: () => unknown, file: RegExp, path: string, message: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof SpecError, String(err));
    assert.match(err.file, file);
    assert.equal(err.path, path);
    assert.match(err.message, message);
    return true;
  });
}

describe('parseOverride', () => {
  it('splits keys and indices and reads the value as YAML', () => {
    assert.deepEqual(parseOverride('seed=5'), { text: 'seed=5', steps: [{ key: 'seed' }], value: 5 });
    assert.deepEqual(parseOverride('components[0].source.uris=[a, "b,c"]').steps, [
      { key: 'components' },
      { index: 0 },
      { key: 'source' },
      { key: 'uris' },
    ]);
    assert.deepEqual(parseOverride('components[0].source.uris=[a, "b,c"]').value, ['a', 'b,c']);
    assert.deepEqual(parseOverride('components.recap.take={count: 3}').value, { count: 3 });
    assert.equal(parseOverride('name=a=b').value, 'a=b');
    assert.equal(parseOverride('name="007"').value, '007');
    assert.equal(parseOverride('components.recap.take=').value, null);
  });

  it('rejects a missing =, bad segments and invalid YAML values', () => {
    throwsSpecError(() => parseOverride('seed'), /--set seed/, '', /path=value/);
    throwsSpecError(() => parseOverride('components..x=1'), /--set/, 'components', /bad path segment ''/);
    throwsSpecError(() => parseOverride('a.b c=1'), /--set/, 'a', /bad path segment 'b c'/);
    throwsSpecError(() => parseOverride('seed=[1, 2'), /--set/, 'seed', /not valid YAML/);
  });
});

describe('applyOverrides', () => {
  it('sets top-level and nested fields, addressing components by name or index', () => {
    const input = spec();
    const { data, applied } = applyOverrides(input, [
      'seed=5',
      'components.recap.take.count=100',
      'components[1].source.uris=[x, y]',
      'output.compression=gzip',
    ]);
    const out = data as ReturnType<typeof spec>;
    assert.equal(out.seed, 5);
    assert.deepEqual(out.components[0], {
      name: 'recap',
      source: { format: 'llava-recap', uris: ['a'] },
      take: { count: 100 },
    });
    assert.deepEqual(out.components[1].source.uris, ['x', 'y']);
    assert.deepEqual(out.output, { shard_rows: 10, compression: 'gzip' });
    assert.deepEqual(
      applied.map((a) => a.path),
      ['seed', 'components[0].take.count', 'components[1].source.uris', 'output.compression'],
    );
    assert.deepEqual(input, spec(), 'the input is not modified');
  });

  it('applies overrides in order, later ones winning', () => {
    const { data } = applyOverrides(spec(), ['seed=5', 'seed=6']);
    assert.equal((data as { seed: number }).seed, 6);
  });

  it('replaces a whole field, or sets it to null (the loader then treats it as absent)', () => {
    const { data } = applyOverrides(spec(), [
      'components.docmatix.take={count: 7}',
      'components.recap.source=null',
    ]);
    const out = data as { components: { take?: unknown; source?: unknown }[] };
    assert.deepEqual(out.components[1].take, { count: 7 });
    assert.equal(out.components[0].source, null);
  });

  it('appends to a list at index = length, and only there', () => {
    const { data } = applyOverrides(spec(), ['components.recap.source.uris[1]=more/*.parquet']);
    assert.deepEqual((data as ReturnType<typeof spec>).components[0].source.uris, ['a', 'more/*.parquet']);
    throwsSpecError(
      () => applyOverrides(spec(), ['components.recap.source.uris[3]=x']),
      /--set/,
      'components[0].source.uris',
      /index 3 is out of range \(the list has 1 entry\)/,
    );
  });

  it('names the override and the known components when a component name is unknown', () => {
    throwsSpecError(
      () => applyOverrides(spec(), ['components.recapp.take.count=1']),
      /^--set components\.recapp\.take\.count=1$/,
      'components',
      /no entry named 'recapp' \(names: recap, docmatix\)/,
    );
  });

  it('rejects an index on a mapping and a field inside a scalar', () => {
    throwsSpecError(() => applyOverrides(spec(), ['output[0]=1']), /--set/, 'output', /used on a mapping/);
    throwsSpecError(() => applyOverrides(spec(), ['seed.x=1']), /--set/, 'seed', /inside a number value/);
  });
});
