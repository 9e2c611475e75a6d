#!/usr/bin/env node
// Launcher: runs the TypeScript CLI through tsx (no build step), first re-running itself once with the process-wide
// settings of process-env.js (threadpool size, malloc tuning) when they are not in the environment.
import { rerunWithProcessEnv } from './process-env.js';

if (!(await rerunWithProcessEnv())) {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../cli/main.ts');
}
