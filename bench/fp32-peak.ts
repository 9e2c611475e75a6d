// An adapter's FP32 peak, for "fraction of peak" columns. WebGPU exposes no clock or core count, so the peak
// comes from a table of known adapters (dense FP32 on the CUDA cores, boost clock, from the vendors' data
// sheets; no tensor cores, no TF32), matched against the adapter's name; `--peak-tflops` overrides it.

export interface Fp32Peak {
  tflops: number;
  /** Where the figure came from: the table row that matched, or the override. */
  source: string;
}

/** First match wins, so the more specific names (PCIe, NVL) come before the family name. */
const KNOWN: { pattern: RegExp; name: string; tflops: number }[] = [
  { pattern: /gh200/i, name: 'GH200 (H100 SXM5 GPU)', tflops: 66.9 },
  { pattern: /h200\s*nvl/i, name: 'H200 NVL', tflops: 60.3 },
  { pattern: /h200/i, name: 'H200 SXM', tflops: 66.9 },
  { pattern: /h100\s*pcie/i, name: 'H100 PCIe', tflops: 51.2 },
  { pattern: /h100\s*nvl/i, name: 'H100 NVL', tflops: 60.3 },
  // "NVIDIA H100 80GB HBM3" is the SXM5 board.
  { pattern: /h100/i, name: 'H100 SXM5', tflops: 66.9 },
  { pattern: /a100/i, name: 'A100', tflops: 19.5 },
  { pattern: /a10g/i, name: 'A10G', tflops: 31.2 },
  { pattern: /\ba10\b/i, name: 'A10', tflops: 31.2 },
  { pattern: /l40s/i, name: 'L40S', tflops: 91.6 },
  { pattern: /\bl40\b/i, name: 'L40', tflops: 90.5 },
  { pattern: /\bl4\b/i, name: 'L4', tflops: 30.3 },
  { pattern: /\bt4\b/i, name: 'T4', tflops: 8.1 },
  { pattern: /v100/i, name: 'V100 SXM2', tflops: 15.7 },
  { pattern: /rtx\s*6000\s*ada/i, name: 'RTX 6000 Ada', tflops: 91.1 },
  { pattern: /rtx\s*a6000/i, name: 'RTX A6000', tflops: 38.7 },
  { pattern: /rtx\s*4090/i, name: 'GeForce RTX 4090', tflops: 82.6 },
  { pattern: /rtx\s*4080/i, name: 'GeForce RTX 4080', tflops: 48.7 },
  { pattern: /rtx\s*3090/i, name: 'GeForce RTX 3090', tflops: 35.6 },
  { pattern: /mi300x/i, name: 'Instinct MI300X', tflops: 163.4 },
  { pattern: /mi250x/i, name: 'Instinct MI250X', tflops: 47.9 },
];

/**
 * The FP32 peak of the adapter named `adapterName` (its description / device string), or `override` when
 * given; undefined when neither applies (CPU adapters, unknown GPUs).
 */
export function fp32Peak(adapterName: string, override?: number): Fp32Peak | undefined {
  if (override !== undefined) {
    if (!(override > 0)) throw new Error(`--peak-tflops: expected a positive number, got ${override}`);
    return { tflops: override, source: '--peak-tflops' };
  }
  const hit = KNOWN.find((k) => k.pattern.test(adapterName));
  return hit && { tflops: hit.tflops, source: `table: ${hit.name}` };
}

/** One line that says where the peak came from, for the bench output. */
export function describePeak(adapterName: string, peak: Fp32Peak | undefined): string {
  return peak
    ? `FP32 peak ${peak.tflops} TFLOP/s (${peak.source}; WebGPU reports no peak, so it is looked up, not measured)`
    : `FP32 peak of "${adapterName}" unknown (not in bench/fp32-peak.ts): pass --peak-tflops for a fraction of peak`;
}
