// Process-wide settings that must be in the environment before Node starts (the launcher and benchmarks re-run
// themselves with them). Plain JavaScript: loaded before tsx is registered.
import { availableParallelism } from 'node:os';

/**
 * glibc malloc: serve allocations up to 32 MiB from its arenas and keep up to 512 MiB of freed memory there, and
 * ask for transparent huge pages on the larger blocks it maps. The image paths allocate the same few-MiB buffers
 * per image (decoded pixels, resized RGBA); by default glibc hands each back to the kernel and the next one is
 * page-faulted in again, which on virtual machines costs more than the resize itself. Batch tensors (100 MB for
 * eight f32 images at 1024²) are fresh memory each time: 2 MiB pages fault in 1.8× faster than 4 KiB ones
 * (bench/loader.ts, docs/benchmarks.md). glibc < 2.35 ignores `hugetlb`; other C libraries ignore all of it.
 */
export const GLIBC_TUNABLES =
  'glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=536870912:glibc.malloc.hugetlb=1';

/**
 * The variables to add to `env` for this machine; empty when all are set already. sharp shares libuv's threadpool,
 * sized once at start from UV_THREADPOOL_SIZE (default 4): on bigger machines it is set to the core count.
 */
export function missingProcessEnv(env = process.env) {
  const add = {};
  const cores = Math.max(4, availableParallelism());
  if (!env.UV_THREADPOOL_SIZE && cores > 4) add.UV_THREADPOOL_SIZE = String(cores);
  if (process.platform === 'linux' && env.GLIBC_TUNABLES === undefined) add.GLIBC_TUNABLES = GLIBC_TUNABLES;
  return add;
}

const CHILD_MARK = 'MIXFORGE_RERUN_CHILD';

/**
 * Re-run this process with the missing variables set; resolves to true when it did (the child's exit ends this
 * process), false when nothing was missing. Signals are forwarded so `mixforge worker` still shuts down gracefully,
 * and the child stops (SIGTERM) if this process dies without forwarding one (kill -9): no orphaned worker.
 */
export function rerunWithProcessEnv(args = [...process.execArgv, ...process.argv.slice(1)]) {
  if (process.env[CHILD_MARK] && process.channel) {
    // The parent's end of the IPC channel closes when it dies, however it dies.
    process.channel.unref();
    process.on('disconnect', () => process.kill(process.pid, 'SIGTERM'));
    return Promise.resolve(false);
  }
  const add = missingProcessEnv();
  if (Object.keys(add).length === 0) return Promise.resolve(false);
  return import('node:child_process').then(({ spawn }) => {
    const child = spawn(process.execPath, args, {
      stdio: ['inherit', 'inherit', 'inherit', 'ipc'],
      env: { ...process.env, ...add, [CHILD_MARK]: '1' },
    });
    const forwarded = ['SIGINT', 'SIGTERM', 'SIGHUP'];
    const forward = (sig) => child.kill(sig);
    for (const sig of forwarded) process.on(sig, forward);
    child.on('exit', (code, signal) => {
      if (!signal) process.exit(code ?? 1);
      // Die of the same signal, so whoever started us sees it: without the forwarder, its default action applies.
      for (const sig of forwarded) process.off(sig, forward);
      process.kill(process.pid, signal);
    });
    return true;
  });
}
