// Finds a Python that imports torch (Debian's python3-torch) for the PyTorch oracle tests; MIXFORGE_TORCH_PYTHON
// picks one explicitly. Undefined when none is installed (the tests then skip, saying so).
import { spawnSync } from 'node:child_process';

export function findTorchPython(): string | undefined {
  const candidates = [process.env.MIXFORGE_TORCH_PYTHON, 'python3', '/usr/bin/python3'].filter(
    (c): c is string => !!c,
  );
  for (const py of candidates) {
    const r = spawnSync(py, ['-c', 'import torch'], { stdio: 'ignore' });
    if (r.status === 0) return py;
  }
  return undefined;
}
