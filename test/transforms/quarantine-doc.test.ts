// docs/quarantine.md documents every reason of core/quarantine.ts, and nothing else.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { it } from 'node:test';
import { QUARANTINE_REASONS } from '../../core/quarantine.ts';

it('docs/quarantine.md lists exactly QUARANTINE_REASONS, each once', () => {
  const doc = readFileSync('docs/quarantine.md', 'utf8');
  const documented = [...doc.matchAll(/^\| `([a-z0-9-]+)` +\|/gm)].map((m) => m[1]);
  assert.equal(new Set(documented).size, documented.length, 'a reason documented twice');
  assert.deepEqual([...documented].sort(), [...QUARANTINE_REASONS].sort());
});
