// Host-side (CPU) tensors of the model definition: a shape plus Float32 data in PyTorch's layout (NCHW / OIHW).
// Data is allocated on first access so the full model's structure (names, shapes, counts) costs no memory.

/** A float32 tensor held in host memory, row-major in PyTorch's layout. */
export class HostTensor {
  readonly dtype = 'F32' as const;
  readonly shape: readonly number[];
  readonly numel: number;
  private storage: Float32Array | undefined;
  /** The value a lazily allocated tensor starts with (BatchNorm's weight and running variance start at 1). */
  private readonly initialValue: number;

  constructor(shape: readonly number[], data?: Float32Array, initialValue = 0) {
    for (const d of shape) {
      if (!Number.isInteger(d) || d < 0)
        throw new RangeError(`tensor shape [${shape.join(', ')}] has a bad dimension`);
    }
    this.shape = [...shape];
    this.numel = shape.reduce((a, b) => a * b, 1);
    if (data !== undefined && data.length !== this.numel) {
      throw new RangeError(
        `tensor of shape [${shape.join(', ')}] needs ${this.numel} values, got ${data.length}`,
      );
    }
    this.storage = data;
    this.initialValue = initialValue;
  }

  /** The values; filled with the initial value (0 unless given) on first access when the tensor was created without data. */
  get data(): Float32Array {
    if (this.storage === undefined) {
      this.storage = new Float32Array(this.numel);
      if (this.initialValue !== 0) this.storage.fill(this.initialValue);
    }
    return this.storage;
  }

  set data(values: Float32Array) {
    if (values.length !== this.numel) {
      throw new RangeError(
        `tensor of shape [${this.shape.join(', ')}] needs ${this.numel} values, got ${values.length}`,
      );
    }
    this.storage = values;
  }

  /** Whether values exist yet (false: only the shape is known). */
  get materialized(): boolean {
    return this.storage !== undefined;
  }

  fill(value: number): this {
    this.data.fill(value);
    return this;
  }

  clone(): HostTensor {
    return new HostTensor(this.shape, this.materialized ? this.data.slice() : undefined, this.initialValue);
  }
}

/**
 * A 64-bit integer scalar buffer. PyTorch's BatchNorm keeps `num_batches_tracked` as an int64 of shape [];
 * state_dicts carry it, so round-tripping a checkpoint needs it.
 */
export class CounterTensor {
  readonly dtype = 'I64' as const;
  readonly shape: readonly number[] = [];
  readonly numel = 1;
  readonly data = new BigInt64Array(1);

  get value(): bigint {
    return this.data[0];
  }

  set value(v: bigint) {
    this.data[0] = v;
  }
}

export type ModelTensor = HostTensor | CounterTensor;

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function shapeString(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}
