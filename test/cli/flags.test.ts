// The shared number-flag parsers: what they accept, and that a refusal names the flag and the value.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InvalidArgumentError } from 'commander';
import { intFlag, numberFlag } from '../../cli/flags.ts';

describe('cli flags', () => {
  it('intFlag accepts whole numbers at or above its minimum', () => {
    assert.equal(intFlag('--limit')('0'), 0);
    assert.equal(intFlag('--limit')(' 42 '), 42);
    assert.equal(intFlag('--workers', 1)('3'), 3);
  });

  it('intFlag refuses fractions, words and values below the minimum, naming the flag', () => {
    assert.throws(() => intFlag('--limit')('1.5'), /--limit must be an integer, got "1.5"/);
    assert.throws(() => intFlag('--limit')('ten'), InvalidArgumentError);
    assert.throws(() => intFlag('--workers', 1)('0'), /--workers must be ≥ 1, got 0/);
    assert.throws(() => intFlag('--rank')('-1'), /--rank must be ≥ 0/);
  });

  it('numberFlag accepts finite numbers and refuses the rest', () => {
    assert.equal(numberFlag('--max-aspect')('2.5'), 2.5);
    assert.throws(() => numberFlag('--max-aspect')(''), /--max-aspect must be a number/);
    assert.throws(() => numberFlag('--max-aspect')('Infinity'), /--max-aspect must be a number/);
  });
});
