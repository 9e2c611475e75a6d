// S3 failures as a user meets them through the CLI: a silent endpoint fails within its timeouts, a 403 names the
// status and the variables to set, missing credentials name the variables (never an internal done-marker path).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import {
  type AddressInfo,
  createServer as createTcpServer,
  type Socket,
  type Server as TcpServer,
} from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { shippedSpecPath } from '../../demo/spec-overrides.ts';
import { demoDataDir } from '../helpers/demo-data.ts';

const CLI = join(import.meta.dirname, '../../cli/main.ts');
/** A guard only: each command must end on its own well before this (its own bound is about 2 s). */
const GUARD_MS = 90_000;

let data = '';
let home = '';
let silent: TcpServer;
const silentSockets = new Set<Socket>();
let forbidding: Server;
let silentEndpoint = '';
let forbiddingEndpoint = '';
let stalling: Server;
let stallingEndpoint = '';

/** The environment with every AWS/S3 setting removed, no shared config, no instance metadata lookups. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^(AWS_|S3_)/.test(k)) env[k] = v;
  return {
    ...env,
    HOME: home,
    AWS_CONFIG_FILE: join(home, 'no-config'),
    AWS_SHARED_CREDENTIALS_FILE: join(home, 'no-credentials'),
    AWS_EC2_METADATA_DISABLED: 'true',
    MIXFORGE_DEMO_DATA: data,
    ...extra,
  };
}

function mixforge(
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; signal: string | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CLI, ...args], {
      env,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString('utf8');
    });
    const guard = setTimeout(() => child.kill('SIGKILL'), GUARD_MS);
    child.on('close', (code, signal) => {
      clearTimeout(guard);
      resolve({ code, signal, stderr });
    });
  });
}

const keys = { AWS_ACCESS_KEY_ID: 'WRONG', AWS_SECRET_ACCESS_KEY: 'WRONG', AWS_REGION: 'us-east-1' };

before(async () => {
  data = await demoDataDir();
  home = await mkdtemp(join(tmpdir(), 'mixforge-s3-errors-'));
  silent = createTcpServer((socket) => {
    // Accept and never answer.
    silentSockets.add(socket);
    socket.on('close', () => silentSockets.delete(socket));
  });
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  silentEndpoint = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
  forbidding = createServer((req, res) => {
    req.resume();
    res.statusCode = 403;
    res.end();
  });
  await new Promise<void>((r) => forbidding.listen(0, '127.0.0.1', r));
  forbiddingEndpoint = `http://127.0.0.1:${(forbidding.address() as AddressInfo).port}`;
  // Serves a manifest, then stalls in the middle of the shard's body.
  const manifest = JSON.stringify({
    schema: 'mixforge.manifest/v1',
    shards: [{ path: 'shards/shard-00000.parquet', rows: 1, bytes: 1000, sha256: '0'.repeat(64) }],
    quarantine: { path: 'quarantine.parquet', rows: 0, bytes: 0, sha256: '' },
    components: [],
    totals: { rows: 1, shards: 1, bytes: 1000, quarantined: 0 },
  });
  stalling = createServer((req, res) => {
    req.resume();
    if (req.url?.includes('manifest.json')) {
      res.setHeader('content-length', Buffer.byteLength(manifest));
      res.end(req.method === 'HEAD' ? undefined : manifest);
      return;
    }
    res.setHeader('content-length', 1000);
    if (req.method === 'HEAD') res.end();
    else res.write(Buffer.alloc(10)); // and nothing more
  });
  await new Promise<void>((r) => stalling.listen(0, '127.0.0.1', r));
  stallingEndpoint = `http://127.0.0.1:${(stalling.address() as AddressInfo).port}`;
});
after(async () => {
  for (const s of silentSockets) s.destroy();
  await new Promise((r) => silent.close(r));
  forbidding.closeAllConnections();
  await new Promise((r) => forbidding.close(r));
  stalling.closeAllConnections();
  await new Promise((r) => stalling.close(r));
  await rm(home, { recursive: true, force: true });
});

describe('S3 failures through the CLI', () => {
  it('a silent endpoint fails build, verify and stream within the timeouts, naming the endpoint and the settings', async () => {
    const env = cleanEnv({
      ...keys,
      S3_ENDPOINT: silentEndpoint,
      S3_CONNECT_TIMEOUT_MS: '1000',
      S3_RESPONSE_TIMEOUT_MS: '300',
      AWS_MAX_ATTEMPTS: '2',
    });
    const runs = await Promise.all([
      mixforge(['build', shippedSpecPath('demo'), '--out', 's3://mix/out'], env),
      mixforge(['verify', 's3://mix/out'], env),
      mixforge(['stream', 's3://mix/out/manifest.json'], env),
    ]);
    for (const r of runs) {
      assert.equal(r.signal, null, `killed by the guard: the command hung\n${r.stderr}`);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, new RegExp(`no answer from S3 at ${silentEndpoint} \\(2 attempts\\)`), r.stderr);
      assert.match(r.stderr, /300 ms of inactivity/);
      assert.match(r.stderr, /S3_RESPONSE_TIMEOUT_MS/);
    }
  });

  it('a server that stalls in the middle of a body fails `verify` the same way', async () => {
    const r = await mixforge(
      ['verify', 's3://mix/out'],
      cleanEnv({
        ...keys,
        S3_ENDPOINT: stallingEndpoint,
        S3_RESPONSE_TIMEOUT_MS: '300',
        AWS_MAX_ATTEMPTS: '2',
      }),
    );
    assert.equal(r.signal, null, `killed by the guard: the command hung\n${r.stderr}`);
    assert.notEqual(r.code, 0);
    assert.match(
      r.stderr,
      new RegExp(
        `shard-00000.parquet: read failed: no answer from S3 at ${stallingEndpoint}: .*300 ms of inactivity`,
      ),
      r.stderr,
    );
  });

  it('a 403 with an empty body names the status and the variables to set, not an internal path', async () => {
    const env = cleanEnv({ ...keys, S3_ENDPOINT: forbiddingEndpoint });
    const runs = await Promise.all([
      mixforge(['build', shippedSpecPath('demo'), '--out', 's3://mix/out'], env),
      mixforge(['verify', 's3://mix/out'], env),
    ]);
    for (const r of runs) {
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /HTTP 403 Forbidden/, r.stderr);
      assert.match(r.stderr, /AWS_ACCESS_KEY_ID/);
      assert.match(r.stderr, /AWS_PROFILE/);
      assert.match(r.stderr, /AWS_REGION/);
      assert.match(r.stderr, /S3_ENDPOINT/);
      assert.match(r.stderr, new RegExp(`S3 at ${forbiddingEndpoint}`));
      assert.doesNotMatch(r.stderr, /UnknownError|_build/);
    }
  });

  it('missing credentials name the variables to set', async () => {
    const r = await mixforge(
      ['build', shippedSpecPath('demo'), '--out', 's3://mix/out'],
      cleanEnv({ S3_ENDPOINT: forbiddingEndpoint, AWS_REGION: 'us-east-1' }),
    );
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /s3:\/\/mix: no S3 credentials found: set AWS_ACCESS_KEY_ID/, r.stderr);
    assert.match(r.stderr, /AWS_PROFILE/);
    assert.doesNotMatch(r.stderr, /_build/);
  });

  it('rejects a timeout setting that is not a positive number of milliseconds', async () => {
    const r = await mixforge(
      ['verify', 's3://mix/out'],
      cleanEnv({ ...keys, S3_ENDPOINT: forbiddingEndpoint, S3_RESPONSE_TIMEOUT_MS: '30s' }),
    );
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /S3_RESPONSE_TIMEOUT_MS must be a positive number of milliseconds, got "30s"/);
  });
});
