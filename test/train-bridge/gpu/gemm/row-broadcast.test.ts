// The CPU-adapter GEMM's row slicing: more rows than 65535 workgroups of 16 rows (its tile for N ≤ 16) can
// cover, plain and with a transposed A, checked element by element against host arithmetic.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Engine } from '../../../../train-bridge/gpu/engine.ts';
import { forceGemmKernel } from '../../../../train-bridge/gpu/gemm/registry.ts';
import { matmulRaw } from '../../../../train-bridge/gpu/ops/matmul.ts';

let eng: Engine;
before(async () => {
  eng = await Engine.create();
  forceGemmKernel(eng, 'rowb8x64');
});
after(() => eng.destroy());

for (const transA of [false, true]) {
  test(`rows beyond the workgroup-grid limit are all computed (transA ${transA})`, async () => {
    const M = eng.maxWorkgroupsPerDim * 16 + 13;
    const K = 2;
    const N = 3;
    // Small integers: every product and sum is exact in f32.
    const a = new Float32Array(M * K).map((_, i) => (i % 7) - 3);
    const b = new Float32Array([1, -2, 3, 2, 1, -1]);
    const at = (m: number, k: number) => a[transA ? k * M + m : m * K + k] as number;
    const A = eng.upload(a, transA ? [K, M] : [M, K]);
    const B = eng.upload(b, [K, N]);
    const C = eng.noGrad(() => matmulRaw(A, B, { transA }));
    const got = await C.read();
    for (const t of [A, B, C]) t.dispose();
    assert.equal(got.length, M * N);
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        const want = at(m, 0) * (b[n] as number) + at(m, 1) * (b[N + n] as number);
        if (got[m * N + n] !== want) assert.fail(`C[${m}, ${n}] = ${got[m * N + n]}, want ${want}`);
      }
    }
  });
}
