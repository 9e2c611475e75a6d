// The FP32 peak lookup behind the device check's "of peak" column: adapter names as Vulkan drivers report
// them, the more specific board before the family, the override, and unknown adapters.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describePeak, fp32Peak } from '../../bench/fp32-peak.ts';

test('known adapter names map to their board', () => {
  const cases: [string, string, number][] = [
    ['NVIDIA H100 80GB HBM3', 'H100 SXM5', 66.9],
    ['NVIDIA H100 PCIe', 'H100 PCIe', 51.2],
    ['NVIDIA H100 NVL', 'H100 NVL', 60.3],
    ['NVIDIA H200', 'H200 SXM', 66.9],
    ['NVIDIA H200 NVL', 'H200 NVL', 60.3],
    ['NVIDIA A100-SXM4-80GB', 'A100', 19.5],
    ['NVIDIA L4', 'L4', 30.3],
    ['NVIDIA L40S', 'L40S', 91.6],
    ['NVIDIA GeForce RTX 4090', 'GeForce RTX 4090', 82.6],
    ['NVIDIA A10G', 'A10G', 31.2],
  ];
  for (const [name, board, tflops] of cases) {
    assert.deepEqual(fp32Peak(name), { tflops, source: `table: ${board}` }, name);
  }
});

test('CPU adapters and unknown GPUs have no peak unless one is given', () => {
  assert.equal(fp32Peak('llvmpipe (LLVM 19.1.7, 256 bits)'), undefined);
  assert.match(describePeak('llvmpipe', undefined), /unknown.*--peak-tflops/);
  assert.deepEqual(fp32Peak('llvmpipe', 1.5), { tflops: 1.5, source: '--peak-tflops' });
  assert.deepEqual(fp32Peak('NVIDIA H100 PCIe', 40), { tflops: 40, source: '--peak-tflops' });
  assert.throws(() => fp32Peak('x', Number.NaN), /--peak-tflops: expected a positive number/);
  assert.throws(() => fp32Peak('x', 0), /positive/);
});
