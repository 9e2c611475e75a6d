// The learning-rate schedule of the FastVLM/LLaVA recipe: linear warmup over ceil(ratio·total) updates, then
// cosine decay to zero, exactly as Hugging Face's get_cosine_schedule_with_warmup (which LLaVA's trainer uses).

/** Learning rate of update `step` (0-based) out of `total`. The first update has lr 0 when there is warmup, as in HF. */
export function cosineWithWarmup(step: number, total: number, peak: number, warmupRatio: number): number {
  if (!Number.isInteger(step) || step < 0)
    throw new RangeError(`step must be a non-negative integer, got ${step}`);
  if (!Number.isInteger(total) || total < 1)
    throw new RangeError(`total steps must be a positive integer, got ${total}`);
  const warmup = warmupSteps(total, warmupRatio);
  if (step < warmup) return (peak * step) / Math.max(1, warmup);
  const progress = (step - warmup) / Math.max(1, total - warmup);
  return peak * Math.max(0, 0.5 * (1 + Math.cos(Math.PI * progress)));
}

export function warmupSteps(total: number, warmupRatio: number): number {
  if (!(warmupRatio >= 0 && warmupRatio < 1))
    throw new RangeError(`warmup ratio must be in [0, 1), got ${warmupRatio}`);
  return Math.ceil(total * warmupRatio);
}
