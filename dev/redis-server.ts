// Starts a private redis-server on a free loopback port in a temp folder for tests (optionally with persistence),
// and can restart it on the same port and folder, so tests can take Redis away in the middle of a build.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface RedisServerOptions {
  /** Append-only file persistence (survives restarts). Default false (no persistence at all). */
  appendonly?: boolean;
  /** `always` loses nothing even on kill -9; `everysec` is Redis's default. */
  appendfsync?: 'always' | 'everysec' | 'no';
}

export interface TestRedis {
  port: number;
  url: string;
  dir: string;
  /** Stops the server (SIGTERM: Redis flushes its AOF first) and starts it again on the same port and folder. */
  restart(opts?: { downMs?: number }): Promise<void>;
  /** Sends one command over a plain socket (RESP) and returns the raw reply text. */
  command(...args: string[]): Promise<string>;
  /** Fields of `INFO <section>` as a map. */
  info(section: string): Promise<Map<string, string>>;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function encodeCommand(args: string[]): string {
  return `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;
}

/** One request/response over RESP; enough for PING/INFO/CONFIG/DBSIZE in tests (reads until the reply is complete). */
function respCommand(port: number, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = new Socket();
    let buf = Buffer.alloc(0);
    const done = (err?: Error, value?: string) => {
      sock.destroy();
      if (err) reject(err);
      else resolve(value ?? '');
    };
    sock.setTimeout(5000, () => done(new Error(`redis 127.0.0.1:${port}: no reply to ${args[0]}`)));
    sock.once('error', (err) => done(err));
    sock.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      const text = buf.toString('utf8');
      const type = text[0];
      const eol = text.indexOf('\r\n');
      if (eol < 0) return;
      if (type === '+' || type === ':') done(undefined, text.slice(1, eol));
      else if (type === '-') done(new Error(`redis: ${text.slice(1, eol)}`));
      else if (type === '$') {
        const len = Number(text.slice(1, eol));
        if (len < 0) done(undefined, '');
        else if (buf.length >= eol + 2 + len + 2)
          done(undefined, buf.subarray(eol + 2, eol + 2 + len).toString('utf8'));
      } else done(new Error(`redis: unexpected reply ${JSON.stringify(text.slice(0, 40))}`));
    });
    sock.connect(port, '127.0.0.1', () => sock.write(encodeCommand(args)));
  });
}

async function waitForPing(port: number, proc: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`redis-server exited with ${proc.exitCode}: ${log()}`);
    try {
      // While loading the AOF Redis answers -LOADING; keep waiting until PONG.
      if ((await respCommand(port, ['PING'])) === 'PONG') return;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error(`redis-server on ${port} did not answer PING: ${log()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * On Linux the server gets SIGTERM when the process that started it dies, however it dies (a test killed by the
 * runner's timeout, kill -9): util-linux's setpriv sets the parent-death signal and execs redis-server in place.
 */
const SETPRIV = '/usr/bin/setpriv';
const redisCommand = (args: string[]): [string, string[]] =>
  process.platform === 'linux' && existsSync(SETPRIV)
    ? [SETPRIV, ['--pdeathsig', 'TERM', '--', 'redis-server', ...args]]
    : ['redis-server', args];

export async function startRedis(opts: RedisServerOptions = {}): Promise<TestRedis> {
  const dir = await mkdtemp(join(tmpdir(), 'mixforge-redis-'));
  const port = await freePort();
  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--dir',
    dir,
    '--save',
    '',
    '--appendonly',
    opts.appendonly ? 'yes' : 'no',
    '--appendfsync',
    opts.appendfsync ?? 'everysec',
    // BullMQ requires that Redis never evicts its keys.
    '--maxmemory-policy',
    'noeviction',
    '--daemonize',
    'no',
  ];
  let proc: ChildProcess;
  let output = '';
  const launch = async () => {
    output = '';
    const [command, argv] = redisCommand(args);
    proc = spawn(command, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    proc.stdout?.on('data', (d: Buffer) => {
      output = (output + d.toString('utf8')).slice(-4000);
    });
    proc.stderr?.on('data', (d: Buffer) => {
      output = (output + d.toString('utf8')).slice(-4000);
    });
    await waitForPing(port, proc, () => output);
  };
  const halt = async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((r) => proc.once('exit', () => r()));
    proc.kill('SIGTERM');
    await exited;
  };
  await launch();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    dir,
    async restart(o = {}) {
      await halt();
      if (o.downMs) await new Promise((r) => setTimeout(r, o.downMs));
      await launch();
    },
    command: (...a: string[]) => respCommand(port, a),
    async info(section: string) {
      const text = await respCommand(port, ['INFO', section]);
      const m = new Map<string, string>();
      for (const line of text.split('\r\n')) {
        const i = line.indexOf(':');
        if (i > 0 && !line.startsWith('#')) m.set(line.slice(0, i), line.slice(i + 1));
      }
      return m;
    },
    async stop() {
      await halt();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
