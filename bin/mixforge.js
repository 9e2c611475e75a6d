#!/usr/bin/env node
// Launcher: runs the TypeScript CLI through tsx (no build step). sharp shares libuv's threadpool, which is sized once
// at process start from UV_THREADPOOL_SIZE (default 4), so on bigger machines we re-run ourselves once with it set
// to the core count; signals are forwarded so `mixforge worker` still shuts down gracefully.
import { spawn } from 'node:child_process';
import { availableParallelism } from 'node:os';

const wanted = Math.max(4, availableParallelism());
if (!process.env.UV_THREADPOOL_SIZE && wanted > 4) {
  const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    stdio: 'inherit',
    env: { ...process.env, UV_THREADPOOL_SIZE: String(wanted) },
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => child.kill(sig));
  child.on('exit', (code, signal) => {
    if (signal) process.kill(process.pid, signal);
    else process.exit(code ?? 1);
  });
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../cli/main.ts');
}
