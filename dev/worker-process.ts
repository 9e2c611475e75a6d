// Worker processes for tests and benchmarks: spawn (node --import tsx), wait until ready, kill -9, stop gracefully,
// keep their logs.
import { type ChildProcess, spawn } from 'node:child_process';

export interface WorkerProcess {
  name: string;
  proc: ChildProcess;
  log: () => string;
  kill9(): Promise<void>;
  stop(): Promise<void>;
}

/** Spawns `node --import tsx <script> ...args`; resolves once the process prints `readyText` (stdout or stderr). */
export async function spawnWorker(
  name: string,
  script: string,
  args: string[],
  opts: { env?: Record<string, string>; readyText: RegExp },
): Promise<WorkerProcess> {
  const proc = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  await new Promise<void>((resolve, reject) => {
    const onData = (d: Buffer) => {
      output = (output + d.toString('utf8')).slice(-20_000);
      if (opts.readyText.test(output)) resolve();
    };
    proc.stdout?.on('data', onData);
    proc.stderr?.on('data', onData);
    proc.once('exit', (code) =>
      reject(new Error(`worker ${name} exited with ${code} before ready:\n${output}`)),
    );
  });
  return {
    name,
    proc,
    log: () => output,
    async kill9() {
      proc.kill('SIGKILL');
      await exited;
    },
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      // A worker that does not finish its job in time is killed: test teardown must not hang.
      const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
