// Where a fastvithd-tiny training step's time goes on the engine: dispatches, submits, buffer and bind-group
// creations per step, host (JS) recording time against the wait for the device, and (--per-kernel) device
// time per kernel name, measured by syncing after every dispatch (slow; the sync cost is subtracted). The main
// thread's CPU while it waits is dawn.node's polling, which competes with a CPU adapter's threads for cores.
// Usage: npx tsx bench/profile-train.ts [--resolution 64] [--batch 8] [--steps 3] [--per-kernel]
import { readdirSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Engine } from '../train-bridge/gpu/engine.ts';
import type { KernelDef } from '../train-bridge/gpu/kernel.ts';
import type { BufferRange } from '../train-bridge/gpu/pipeline-cache.ts';
import { modelConfig } from '../train-bridge/model/fastvithd.ts';
import { fastVitStep } from './fastvit-step.ts';

const { values } = parseArgs({
  options: {
    model: { type: 'string', default: 'fastvithd-tiny' },
    resolution: { type: 'string', default: '64' },
    batch: { type: 'string', default: '8' },
    steps: { type: 'string', default: '3' },
    'per-kernel': { type: 'boolean', default: false },
  },
});
const r = Number(values.resolution);
const batch = Number(values.batch);
const config = modelConfig(values.model);
const eng = await Engine.create();
const { params, optimizer, forward } = fastVitStep(eng, config, r, batch);

// Counting wrappers around the device's creation calls and the engine's dispatch.
const created = { buffers: 0, bindGroups: 0 };
const dev = eng.device;
const createBuffer = dev.createBuffer.bind(dev);
dev.createBuffer = (d) => {
  created.buffers++;
  return createBuffer(d);
};
const createBindGroup = dev.createBindGroup.bind(dev);
dev.createBindGroup = (d) => {
  created.bindGroups++;
  return createBindGroup(d);
};
const perKernel = new Map<string, { n: number; ms: number }>();
const recorded: [KernelDef, BufferRange[], Record<string, number>, readonly [number, number?, number?]][] =
  [];
let recording = false;
const dispatch = eng.dispatch.bind(eng);
eng.dispatch = (def: KernelDef, ranges: BufferRange[], u: Record<string, number>, grid) => {
  const e = perKernel.get(def.name) ?? { n: 0, ms: 0 };
  perKernel.set(def.name, e);
  e.n++;
  if (recording) recorded.push([def, ranges, u, grid]);
  dispatch(def, ranges, u, grid);
};

/** CPU ms of this process's main thread and of all its other threads (lavapipe's), from schedstat: load-proof. */
function threadCpu(): { main: number; others: number } {
  let main = 0;
  let others = 0;
  for (const tid of readdirSync('/proc/self/task')) {
    let ns = 0;
    try {
      ns = Number(readFileSync(`/proc/self/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      continue; // the thread ended
    }
    if (Number(tid) === process.pid) main += ns / 1e6;
    else others += ns / 1e6;
  }
  return { main, others };
}

async function step(): Promise<{
  record: number;
  wait: number;
  recordCpu: number;
  waitCpu: number;
  deviceCpu: number;
}> {
  const c0 = threadCpu();
  const t0 = performance.now();
  const loss = eng.tidy(() => forward());
  eng.backward(loss);
  optimizer.step();
  eng.zeroGrad(params);
  const t1 = performance.now();
  const c1 = threadCpu();
  await loss.read();
  loss.dispose();
  const c2 = threadCpu();
  return {
    record: t1 - t0,
    wait: performance.now() - t1,
    recordCpu: c1.main - c0.main,
    waitCpu: c2.main - c1.main,
    deviceCpu: c2.others - c0.others,
  };
}

// Two warm-up steps: the first compiles the pipelines and fills the buffer pool, the second makes the bind groups.
await step();
await step();
const steps = Number(values.steps);
const s0 = { ...eng.stats };
const c0 = { ...created };
perKernel.clear();
let rec = 0;
let wait = 0;
let recCpu = 0;
let waitCpu = 0;
let devCpu = 0;
for (let i = 0; i < steps; i++) {
  const t = await step();
  rec += t.record;
  wait += t.wait;
  recCpu += t.recordCpu;
  waitCpu += t.waitCpu;
  devCpu += t.deviceCpu;
}
const per = (a: number, b: number) => ((a - b) / steps).toFixed(1);
console.log(
  `${values.model} ${r}² batch ${batch}: per step ${per(eng.stats.dispatches, s0.dispatches)} dispatches, ` +
    `${per(eng.stats.submits, s0.submits)} submits, ${per(eng.stats.readbacks, s0.readbacks)} read-backs, ` +
    `${per(created.buffers, c0.buffers)} createBuffer, ${per(created.bindGroups, c0.bindGroups)} createBindGroup`,
);
console.log(
  `wall: host recording ${(rec / steps).toFixed(1)} ms/step, waiting for the device ${(wait / steps).toFixed(1)} ms/step; ` +
    `CPU: recording (main thread) ${(recCpu / steps).toFixed(1)} ms/step, main thread while waiting ` +
    `${(waitCpu / steps).toFixed(1)} ms/step, lavapipe threads ${(devCpu / steps).toFixed(1)} ms/step`,
);
const rows = [...perKernel.entries()].sort((a, b) => b[1].n - a[1].n);
if (values['per-kernel']) {
  // Driver CPU per kernel: one step's dispatches are recorded, then each is replayed REPEAT times in one
  // submit (in-place kernels then update their state again: harmless for timing) and the lavapipe threads'
  // CPU is divided among them. Includes the fixed per-dispatch cost.
  // The whole step is recorded (forward, backward, AdamW); replaying after it finished is safe because the
  // pool keeps every buffer alive, and NaNs from repeated in-place updates do not change the timing.
  recording = true;
  const loss = eng.tidy(() => forward());
  eng.backward(loss);
  optimizer.step();
  eng.zeroGrad(params);
  recording = false;
  const REPEAT = 10;
  for (const e of perKernel.values()) {
    e.n = 0;
    e.ms = 0;
  }
  await loss.read();
  let total = 0;
  const single: {
    name: string;
    ms: number;
    u: Record<string, number>;
    grid: readonly (number | undefined)[];
  }[] = [];
  for (const [def, ranges, u, grid] of recorded) {
    const c0 = threadCpu().others;
    for (let i = 0; i < REPEAT; i++) dispatch(def, ranges, u, grid);
    await loss.read();
    const e = perKernel.get(def.name) as { n: number; ms: number };
    e.n++;
    const ms = (threadCpu().others - c0) / REPEAT;
    e.ms += ms;
    total += ms;
    single.push({ name: def.name, ms, u, grid });
  }
  single.sort((a, b) => b.ms - a.ms);
  console.log('costliest single dispatches (ms, grid, uniforms)');
  for (const d of single.slice(0, 40)) {
    console.log(
      `${d.name.padEnd(36)} ${d.ms.toFixed(2).padStart(6)} [${d.grid.join(',')}] ${JSON.stringify(d.u)}`,
    );
  }
  loss.dispose();
  console.log(`whole step: lavapipe CPU per kernel name (ms, count), sum ${total.toFixed(1)} ms`);
  rows.sort((a, b) => b[1].ms - a[1].ms);
}
for (const [name, e] of rows.slice(0, 60)) {
  console.log(
    `${name.padEnd(40)} ${String(e.n / (values['per-kernel'] ? 1 : steps)).padStart(6)}${values['per-kernel'] ? ` ${e.ms.toFixed(1).padStart(9)} ms` : ''}`,
  );
}
eng.destroy();
