// How a tensor too large for one storage binding is cut into binding-sized pieces whose starts keep the
// device's offset alignment. Pure arithmetic on the device limits, shared by the engine and every op.

export interface Chunk {
  start: number;
  count: number;
}

export interface BindingLimits {
  /** Largest storage binding in bytes. */
  maxBindingBytes: number;
  /** minStorageBufferOffsetAlignment in bytes. */
  storageAlign: number;
}

/** Splits `units` items of `unitElems` f32 each into binding-sized chunks with aligned starts. */
export function chunkUnits(
  limits: BindingLimits,
  units: number,
  unitElems: number,
  maxElemsPerChunk = Infinity,
): Chunk[] {
  const unitBytes = unitElems * 4;
  if (units === 0) return [];
  const align = limits.storageAlign / gcd(unitBytes, limits.storageAlign);
  let per = Math.min(
    Math.floor(limits.maxBindingBytes / unitBytes),
    Math.floor(maxElemsPerChunk / unitElems),
  );
  if (per >= units) return [{ start: 0, count: units }];
  per = Math.floor(per / align) * align;
  if (per < 1) {
    throw new Error(`cannot chunk ${units}×${unitElems} f32 into ${limits.maxBindingBytes}-byte bindings`);
  }
  const out: Chunk[] = [];
  for (let s = 0; s < units; s += per) out.push({ start: s, count: Math.min(per, units - s) });
  return out;
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}
