// Number flags parsed the same way by every command: whole numbers with a lower bound, and finite numbers.
// A bad value is commander's InvalidArgumentError naming the flag, so the CLI prints it and exits 1.
import { InvalidArgumentError } from 'commander';

/** Parser for a whole-number flag ≥ `min` (`--limit 10`). */
export function intFlag(name: string, min = 0): (v: string) => number {
  return (v) => {
    if (!/^-?\d+$/.test(v.trim())) throw new InvalidArgumentError(`${name} must be an integer, got "${v}"`);
    const n = Number.parseInt(v, 10);
    if (n < min) throw new InvalidArgumentError(`${name} must be ≥ ${min}, got ${n}`);
    return n;
  };
}

/** Parser for a finite-number flag (`--max-aspect 2.5`). */
export function numberFlag(name: string): (v: string) => number {
  return (v) => {
    const x = Number(v);
    if (v.trim() === '' || !Number.isFinite(x))
      throw new InvalidArgumentError(`${name} must be a number, got "${v}"`);
    return x;
  };
}
