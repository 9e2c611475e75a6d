// Child of lavapipe-threads.test.ts: creates an engine with the `lavapipeThreads` of argv[2] ("none" for undefined)
// and prints LP_NUM_THREADS, whether the adapter is a CPU one and the names of lavapipe's worker threads.
import { readdirSync, readFileSync } from 'node:fs';
import { Engine } from '../../../train-bridge/gpu/engine.ts';

const arg = process.argv[2];
const eng = await Engine.create({ lavapipeThreads: arg === 'none' ? undefined : Number(arg) });
const threads = readdirSync('/proc/self/task')
  .map((t) => readFileSync(`/proc/self/task/${t}/comm`, 'utf8').trim())
  .filter((n) => n.startsWith('llvmpipe'));
process.stdout.write(
  JSON.stringify({ env: process.env.LP_NUM_THREADS ?? null, isCpu: eng.ctx.adapter.isCpu, threads }),
);
process.exit(0);
