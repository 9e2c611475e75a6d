// The engine: the one object ops and the model hold. It owns the device, the buffer pool and the pipeline
// cache and puts together the dispatcher (dispatch.ts), host transfers (transfers.ts), tidy scopes and
// grad mode (scopes.ts) and the autograd tape (tape.ts); what is left here is tensor creation.
import { BufferPool, type PooledBuffer } from './buffer-pool.ts';
import { type Chunk, chunkUnits } from './chunking.ts';
import { type AcquireOptions, acquireGpu, type GpuContext } from './device.ts';
import { Dispatcher, type DispatchStats } from './dispatch.ts';
import type { KernelDef } from './kernel.ts';
import { FILL_KERNEL } from './kernels/fill.ts';
import { U8_TO_F32_KERNEL } from './kernels/u8-to-f32.ts';
import { type BufferRange, PipelineCache } from './pipeline-cache.ts';
import { Scopes, type TensorTree } from './scopes.ts';
import { type GradRule, Tape } from './tape.ts';
import { shapeSize, shapeString, Tensor } from './tensor.ts';
import { HostTransfers } from './transfers.ts';

export type { Chunk } from './chunking.ts';
export type { TensorTree } from './scopes.ts';

// `tensor.engine` is typed by an interface that tensor.ts declares without importing this file; widen it to
// the whole Engine here, so ops reach the full engine through any tensor and no import cycle arises.
declare module './tensor.ts' {
  interface TensorEngine extends Engine {}
}

export interface EngineOptions extends AcquireOptions {
  /** Pretend storage bindings are at most this many bytes (tests use it to exercise chunking). */
  maxBindingBytes?: number;
}

export class Engine {
  readonly device: GPUDevice;
  readonly pool: BufferPool;
  readonly pipelines: PipelineCache;
  readonly maxBindingBytes: number;
  readonly storageAlign: number;
  readonly uniformAlign: number;
  readonly maxWorkgroupsPerDim: number;
  readonly maxWorkgroupStorage: number;
  /** How many workgroups a kernel should aim for to fill the device (split-K, reductions). */
  readonly targetWorkgroups: number;
  readonly stats: DispatchStats;
  /** A small buffer for bindings a kernel declares but this dispatch does not use. */
  readonly scratch: PooledBuffer;

  private readonly dispatcher: Dispatcher;
  private readonly transfers: HostTransfers;
  private readonly scopes = new Scopes();
  private readonly tape = new Tape(this);
  private destroyed = false;

  private constructor(
    readonly ctx: GpuContext,
    opts: EngineOptions,
  ) {
    this.device = ctx.device;
    const lim = ctx.device.limits;
    this.maxBindingBytes = Math.min(lim.maxStorageBufferBindingSize, opts.maxBindingBytes ?? Infinity);
    this.storageAlign = lim.minStorageBufferOffsetAlignment;
    this.uniformAlign = lim.minUniformBufferOffsetAlignment;
    this.maxWorkgroupsPerDim = lim.maxComputeWorkgroupsPerDimension;
    this.maxWorkgroupStorage = lim.maxComputeWorkgroupStorageSize;
    this.targetWorkgroups = ctx.adapter.isCpu ? 16 : 1024;
    this.pool = new BufferPool(this.device);
    this.pipelines = new PipelineCache(this.device, ctx.adapter.isCpu);
    this.pool.onDestroy = (id) => this.pipelines.forgetBuffer(id);
    this.scratch = this.pool.acquire(256);
    this.dispatcher = new Dispatcher(this.device, this.pipelines, this, ctx.adapter.isCpu);
    this.stats = this.dispatcher.stats;
    this.transfers = new HostTransfers(this.device, this.dispatcher);
  }

  static async create(opts: EngineOptions = {}): Promise<Engine> {
    return new Engine(await acquireGpu(opts), opts);
  }

  // ---- commands (dispatch.ts) ------------------------------------------------------------------------

  /** Records one dispatch. Zero-sized grids are skipped. */
  dispatch(
    def: KernelDef,
    ranges: BufferRange[],
    uniforms: Record<string, number>,
    grid: readonly [number, number?, number?],
  ): void {
    this.dispatcher.dispatch(def, ranges, uniforms, grid);
  }

  copy(src: BufferRange, dst: BufferRange): void {
    this.dispatcher.copy(src, dst);
  }

  /** Submits everything recorded so far. */
  flush(): void {
    this.dispatcher.flush();
  }

  /** Waits until the GPU has finished everything submitted. */
  sync(): Promise<void> {
    return this.dispatcher.sync();
  }

  // ---- memory ---------------------------------------------------------------------------------------

  /** Splits `units` items of `unitElems` f32 each into binding-sized chunks with aligned starts. */
  chunks(units: number, unitElems: number, maxElemsPerChunk = Infinity): Chunk[] {
    return chunkUnits(this, units, unitElems, maxElemsPerChunk);
  }

  wholeRange(t: Tensor): BufferRange {
    const size = Math.max(4, t.size * 4);
    if (size > this.maxBindingBytes) {
      throw new Error(
        `tensor ${t.name ?? t.id} ${shapeString(t.shape)} (${size} bytes) exceeds one storage binding ` +
          `(${this.maxBindingBytes} bytes) in an op that does not chunk this operand`,
      );
    }
    return { buf: t.storage, offset: 0, size };
  }

  releaseStorage(b: PooledBuffer): void {
    this.pool.release(b);
  }

  /** An uninitialised tensor owned by the current tidy scope. */
  empty(shape: readonly number[]): Tensor {
    const t = new Tensor(this, shape, this.pool.acquire(Math.max(4, shapeSize(shape) * 4)));
    return this.scopes.track(t);
  }

  /** Puts a tensor made elsewhere (views) into the current tidy scope. */
  adopt(t: Tensor): Tensor {
    return this.scopes.track(t);
  }

  fill(shape: readonly number[], value: number): Tensor {
    const t = this.empty(shape);
    for (const c of this.chunks(t.size, 1)) {
      this.dispatch(FILL_KERNEL, [t.slice(c.start, c.count)], { n: c.count, value }, this.grid256(c.count));
    }
    return t;
  }

  zeros(shape: readonly number[]): Tensor {
    return this.fill(shape, 0);
  }

  clone(t: Tensor): Tensor {
    const c = this.empty(t.shape);
    if (t.size > 0)
      this.copy(
        { buf: t.storage, offset: 0, size: t.size * 4 },
        { buf: c.storage, offset: 0, size: t.size * 4 },
      );
    return c;
  }

  parameter(data: Float32Array | readonly number[], shape: readonly number[], name?: string): Tensor {
    const t = this.upload(data, shape);
    this.keep(t);
    t.requiresGrad = true;
    if (name) t.name = name;
    return t;
  }

  // ---- transfers (transfers.ts) ---------------------------------------------------------------------

  upload(data: Float32Array | readonly number[], shape: readonly number[]): Tensor {
    const n = shapeSize(shape);
    if (data.length !== n) throw new Error(`upload: ${data.length} values for shape ${shapeString(shape)}`);
    const t = this.empty(shape);
    const f32 = data instanceof Float32Array ? data : Float32Array.from(data);
    this.transfers.write(t.storage.buffer, f32, n * 4);
    return t;
  }

  /** 32-bit integers (ids, offsets) stored bit for bit; only kernels that declare i32/u32 read them. */
  uploadBits(data: Int32Array | Uint32Array, shape: readonly number[]): Tensor {
    const n = shapeSize(shape);
    if (data.length !== n)
      throw new Error(`uploadBits: ${data.length} values for shape ${shapeString(shape)}`);
    const t = this.empty(shape);
    this.transfers.write(t.storage.buffer, data, n * 4);
    return t;
  }

  /** Ships bytes as is (4× less than f32) and converts on the GPU: y = x·scale + shift. */
  uploadU8(
    data: Uint8Array,
    shape: readonly number[],
    opts: { scale?: number; shift?: number } = {},
  ): Tensor {
    const n = shapeSize(shape);
    if (data.length !== n) throw new Error(`uploadU8: ${data.length} bytes for shape ${shapeString(shape)}`);
    const t = this.empty(shape);
    const padded = Math.ceil(n / 4) * 4;
    const src = this.pool.acquire(Math.max(4, padded));
    let bytes = data;
    if (padded !== n) {
      bytes = new Uint8Array(padded);
      bytes.set(data);
    }
    this.transfers.write(src.buffer, bytes, padded);
    // Chunks in units of storageAlign elements keep both the u8 and the f32 offsets aligned.
    const unit = this.storageAlign;
    for (const u of this.chunks(Math.ceil(n / unit), unit)) {
      const start = u.start * unit;
      const count = Math.min(u.count * unit, n - start);
      const srcRange: BufferRange = { buf: src, offset: start, size: Math.max(4, Math.ceil(count / 4) * 4) };
      this.dispatch(
        U8_TO_F32_KERNEL,
        [srcRange, t.slice(start, count)],
        { n: count, scale: opts.scale ?? 1, shift: opts.shift ?? 0 },
        this.grid256(count),
      );
    }
    this.pool.release(src);
    return t;
  }

  async readTensor(t: Tensor): Promise<Float32Array> {
    return new Float32Array(await this.transfers.read(t.storage.buffer, t.size * 4));
  }

  // ---- scopes and autograd (scopes.ts, tape.ts) -------------------------------------------------------

  /** Runs fn; disposes every tensor it created except those it returns and kept ones. */
  tidy<T extends TensorTree>(fn: () => T): T {
    return this.scopes.tidy(fn);
  }

  /** Exempts a tensor from tidy scopes (parameters, optimiser state, running statistics). */
  keep(t: Tensor): Tensor {
    return this.scopes.keep(t);
  }

  noGrad<T>(fn: () => T): T {
    return this.scopes.noGrad(fn);
  }

  get gradEnabled(): boolean {
    return this.scopes.gradEnabled;
  }

  /**
   * Records an op for backward when grad mode is on and an input requires grad. `grad` gets the output's
   * gradient and which inputs need one, and returns one gradient (or undefined) per input.
   */
  record(op: string, inputs: Tensor[], output: Tensor, saved: Tensor[], grad: GradRule): void {
    if (!this.gradEnabled || !inputs.some((t) => t.requiresGrad)) return;
    output.requiresGrad = true;
    this.tape.push({ op, inputs, output, grad }, saved);
  }

  get tapeLength(): number {
    return this.tape.length;
  }

  /** Accumulates d(y·dy)/dp into p.grad for every parameter p that y depends on, then clears the tape. */
  backward(y: Tensor, dy?: Tensor): void {
    this.tape.backward(y, dy);
  }

  /** Drops the tape without a backward pass (e.g. after an evaluation forward run with grad on). */
  clearTape(): void {
    this.tape.clear();
  }

  zeroGrad(params: Tensor[]): void {
    for (const p of params) {
      p.grad?.dispose();
      p.grad = undefined;
    }
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.dispatcher.close();
    this.ctx.destroy();
  }

  /** 256-thread workgroups covering n elements, folded into 2-D past the per-dimension limit. */
  private grid256(n: number): [number, number] {
    const groups = Math.ceil(n / 256);
    const gx = Math.min(groups, this.maxWorkgroupsPerDim);
    return [gx, Math.ceil(groups / gx)];
  }
}
