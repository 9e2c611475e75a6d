// The engine: owns the device, the buffer pool and the pipeline cache, batches every dispatch of a step
// into one command encoder (uniforms packed into one arena buffer with dynamic offsets), and holds the
// tidy scopes, the grad mode and the autograd tape.
import { BufferPool, type PooledBuffer } from './buffer-pool.ts';
import { type AcquireOptions, acquireGpu, type GpuContext } from './device.ts';
import type { KernelDef } from './kernel.ts';
import { type BufferRange, PipelineCache } from './pipeline-cache.ts';
import { runBackward, type TapeEntry } from './tape.ts';
import { shapeSize, shapeString, Tensor } from './tensor.ts';

export interface EngineOptions extends AcquireOptions {
  /** Pretend storage bindings are at most this many bytes (tests use it to exercise chunking). */
  maxBindingBytes?: number;
}

export interface Chunk {
  start: number;
  count: number;
}

const ARENA_BYTES = 1 << 20;
/** Largest chunk copied through host staging per writeBuffer (uploads from SharedArrayBuffer memory). */
const HOST_STAGING_BYTES = 16 << 20;

const FILL_KERNEL: KernelDef = {
  name: 'fill',
  uniforms: ['n', 'value:f32'],
  storage: [{ name: 'y', access: 'read_write' }],
  body: /* wgsl */ `
@compute @workgroup_size(256) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (wid.y * nwg.x + wid.x) * 256u + li;
  if (i < P.n) { y[i] = P.value; }
}`,
};

const U8_KERNEL: KernelDef = {
  name: 'u8_to_f32',
  uniforms: ['n', 'scale:f32', 'shift:f32'],
  storage: [
    { name: 'src', access: 'read', type: 'u32' },
    { name: 'y', access: 'read_write' },
  ],
  body: /* wgsl */ `
@compute @workgroup_size(256) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (wid.y * nwg.x + wid.x) * 256u + li;
  if (i >= P.n) { return; }
  let byte = (src[i / 4u] >> ((i % 4u) * 8u)) & 255u;
  y[i] = f32(byte) * P.scale + P.shift;
}`,
};

type TensorTree =
  | Tensor
  | TensorTree[]
  | { [key: string]: TensorTree }
  | number
  | string
  | boolean
  | undefined
  | null
  // biome-ignore lint/suspicious/noConfusingVoidType: lets tidy take callbacks that return nothing
  | void;

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
  readonly stats = { dispatches: 0, submits: 0, readbacks: 0 };

  private encoder?: GPUCommandEncoder;
  private pass?: GPUComputePassEncoder;
  private readonly arena = new ArrayBuffer(ARENA_BYTES);
  private readonly arenaView = new DataView(this.arena);
  private arenaOffset = 0;
  private hostStaging = new Uint8Array(0);
  private readonly uniformBuffer: GPUBuffer;
  private readonly scopes: Set<Tensor>[] = [];
  private noGradDepth = 0;
  private tape: TapeEntry[] = [];
  private destroyed = false;
  /** Validation/out-of-memory errors reported by the device; thrown at the next sync or read-back. */
  private readonly gpuErrors: string[] = [];
  /** A small buffer for bindings a kernel declares but this dispatch does not use. */
  readonly scratch: PooledBuffer;

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
    this.pipelines = new PipelineCache(this.device);
    this.pool.onDestroy = (id) => this.pipelines.forgetBuffer(id);
    this.scratch = this.pool.acquire(256);
    this.device.addEventListener('uncapturederror', (ev) => {
      this.gpuErrors.push((ev as GPUUncapturedErrorEvent).error.message);
    });
    this.uniformBuffer = this.device.createBuffer({
      size: ARENA_BYTES,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
  }

  static async create(opts: EngineOptions = {}): Promise<Engine> {
    return new Engine(await acquireGpu(opts), opts);
  }

  // ---- commands --------------------------------------------------------------------------------------

  private ensurePass(): GPUComputePassEncoder {
    if (!this.encoder) this.encoder = this.device.createCommandEncoder();
    if (!this.pass) this.pass = this.encoder.beginComputePass();
    return this.pass;
  }

  private ensureEncoderOutsidePass(): GPUCommandEncoder {
    if (this.pass) {
      this.pass.end();
      this.pass = undefined;
    }
    if (!this.encoder) this.encoder = this.device.createCommandEncoder();
    return this.encoder;
  }

  /** Records one dispatch. Zero-sized grids are skipped. */
  dispatch(
    def: KernelDef,
    ranges: BufferRange[],
    uniforms: Record<string, number>,
    grid: readonly [number, number?, number?],
  ): void {
    const [gx, gy = 1, gz = 1] = grid;
    if (gx === 0 || gy === 0 || gz === 0) return;
    if (this.destroyed) throw new Error('engine used after destroy()');
    const k = this.pipelines.get(def);
    if (ranges.length !== def.storage.length) {
      throw new Error(`kernel ${def.name}: ${ranges.length} bindings given, ${def.storage.length} declared`);
    }
    for (const [i, r] of ranges.entries()) {
      if (r.size > this.maxBindingBytes) {
        throw new Error(
          `kernel ${def.name}: binding ${def.storage[i]?.name} is ${r.size} bytes, over the device's ` +
            `${this.maxBindingBytes}-byte storage binding limit (this operand is not chunked)`,
        );
      }
      if (r.offset % this.storageAlign !== 0) {
        throw new Error(
          `kernel ${def.name}: binding ${def.storage[i]?.name} offset ${r.offset} is not aligned`,
        );
      }
    }
    for (const g of [gx, gy, gz]) {
      if (g > this.maxWorkgroupsPerDim)
        throw new Error(`kernel ${def.name}: grid ${grid.join('x')} too large`);
    }
    const bytes = k.uniforms.bytes;
    let offset = Math.ceil(this.arenaOffset / this.uniformAlign) * this.uniformAlign;
    if (offset + bytes > ARENA_BYTES) {
      this.flush();
      offset = 0;
    }
    for (const [i, f] of k.uniforms.fields.entries()) {
      const v = uniforms[f.name] ?? (f.name.startsWith('_') ? 0 : undefined);
      if (v === undefined) throw new Error(`kernel ${def.name}: uniform ${f.name} not given`);
      const at = offset + i * 4;
      if (f.type === 'f32') this.arenaView.setFloat32(at, v, true);
      else if (f.type === 'i32') this.arenaView.setInt32(at, v, true);
      else this.arenaView.setUint32(at, v, true);
    }
    this.arenaOffset = offset + bytes;
    const pass = this.ensurePass();
    pass.setPipeline(k.pipeline);
    pass.setBindGroup(0, this.pipelines.bindGroup(k, this.uniformBuffer, ranges), [offset]);
    pass.dispatchWorkgroups(gx, gy, gz);
    this.stats.dispatches++;
  }

  copy(src: BufferRange, dst: BufferRange): void {
    const enc = this.ensureEncoderOutsidePass();
    enc.copyBufferToBuffer(
      src.buf.buffer,
      src.offset,
      dst.buf.buffer,
      dst.offset,
      Math.min(src.size, dst.size),
    );
  }

  /** Submits everything recorded so far. */
  flush(): void {
    if (!this.encoder) return;
    if (this.pass) {
      this.pass.end();
      this.pass = undefined;
    }
    if (this.arenaOffset > 0) {
      // Queue order puts this write after earlier submits and before this command buffer.
      this.device.queue.writeBuffer(
        this.uniformBuffer,
        0,
        this.arena,
        0,
        Math.ceil(this.arenaOffset / 4) * 4,
      );
    }
    this.device.queue.submit([this.encoder.finish()]);
    this.encoder = undefined;
    this.arenaOffset = 0;
    this.stats.submits++;
  }

  /** Waits until the GPU has finished everything submitted. */
  async sync(): Promise<void> {
    this.flush();
    await this.device.queue.onSubmittedWorkDone();
    this.throwGpuErrors();
  }

  private throwGpuErrors(): void {
    if (this.gpuErrors.length === 0) return;
    const msgs = this.gpuErrors.splice(0);
    throw new Error(`WebGPU reported ${msgs.length} error(s): ${msgs[0]}`);
  }

  // ---- memory ---------------------------------------------------------------------------------------

  /** Splits `units` items of `unitElems` f32 each into binding-sized chunks with aligned starts. */
  chunks(units: number, unitElems: number, maxElemsPerChunk = Infinity): Chunk[] {
    const unitBytes = unitElems * 4;
    if (units === 0) return [];
    const align = this.storageAlign / gcd(unitBytes, this.storageAlign);
    let per = Math.min(
      Math.floor(this.maxBindingBytes / unitBytes),
      Math.floor(maxElemsPerChunk / unitElems),
    );
    if (per >= units) return [{ start: 0, count: units }];
    per = Math.floor(per / align) * align;
    if (per < 1) {
      throw new Error(`cannot chunk ${units}×${unitElems} f32 into ${this.maxBindingBytes}-byte bindings`);
    }
    const out: Chunk[] = [];
    for (let s = 0; s < units; s += per) out.push({ start: s, count: Math.min(per, units - s) });
    return out;
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
    this.scopes.at(-1)?.add(t);
    return t;
  }

  /** Puts a tensor made elsewhere (views) into the current tidy scope. */
  adopt(t: Tensor): Tensor {
    this.scopes.at(-1)?.add(t);
    return t;
  }

  fill(shape: readonly number[], value: number): Tensor {
    const t = this.empty(shape);
    for (const c of this.chunks(t.size, 1)) {
      const groups = Math.ceil(c.count / 256);
      const gx = Math.min(groups, this.maxWorkgroupsPerDim);
      this.dispatch(FILL_KERNEL, [t.slice(c.start, c.count)], { n: c.count, value }, [
        gx,
        Math.ceil(groups / gx),
      ]);
    }
    return t;
  }

  zeros(shape: readonly number[]): Tensor {
    return this.fill(shape, 0);
  }

  /**
   * Queue a write of the first `byteLength` bytes of `view` to the start of `buffer`. dawn.node refuses memory of a
   * SharedArrayBuffer (the loader's batch tensors), so such bytes go through a reused host staging buffer in
   * chunks; writeBuffer copies at call time, so the staging buffer is free again as soon as it returns.
   */
  private writeHost(buffer: GPUBuffer, view: ArrayBufferView, byteLength: number): void {
    if (!(view.buffer instanceof SharedArrayBuffer)) {
      this.device.queue.writeBuffer(buffer, 0, view.buffer, view.byteOffset, byteLength);
      return;
    }
    const chunk = Math.min(byteLength, HOST_STAGING_BYTES);
    if (this.hostStaging.byteLength < chunk) this.hostStaging = new Uint8Array(chunk);
    const src = new Uint8Array(view.buffer, view.byteOffset, byteLength);
    for (let at = 0; at < byteLength; at += chunk) {
      const len = Math.min(chunk, byteLength - at);
      this.hostStaging.set(src.subarray(at, at + len));
      this.device.queue.writeBuffer(buffer, at, this.hostStaging.buffer, 0, len);
    }
  }

  upload(data: Float32Array | readonly number[], shape: readonly number[]): Tensor {
    const n = shapeSize(shape);
    if (data.length !== n) throw new Error(`upload: ${data.length} values for shape ${shapeString(shape)}`);
    const t = this.empty(shape);
    // A pooled buffer may still be read by unsubmitted commands; writeBuffer must come after them.
    this.flush();
    const f32 = data instanceof Float32Array ? data : Float32Array.from(data);
    if (n > 0) this.writeHost(t.storage.buffer, f32, n * 4);
    return t;
  }

  /** 32-bit integers (ids, offsets) stored bit for bit; only kernels that declare i32/u32 read them. */
  uploadBits(data: Int32Array | Uint32Array, shape: readonly number[]): Tensor {
    const n = shapeSize(shape);
    if (data.length !== n)
      throw new Error(`uploadBits: ${data.length} values for shape ${shapeString(shape)}`);
    const t = this.empty(shape);
    this.flush();
    if (n > 0) this.writeHost(t.storage.buffer, data, n * 4);
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
    this.flush();
    const bytes =
      padded === n
        ? data
        : (() => {
            const p = new Uint8Array(padded);
            p.set(data);
            return p;
          })();
    this.writeHost(src.buffer, bytes, padded);
    // Chunks in units of storageAlign elements keep both the u8 and the f32 offsets aligned.
    const unit = this.storageAlign;
    for (const u of this.chunks(Math.ceil(n / unit), unit)) {
      const c = { start: u.start * unit, count: Math.min(u.count * unit, n - u.start * unit) };
      const srcRange: BufferRange = {
        buf: src,
        offset: c.start,
        size: Math.max(4, Math.ceil(c.count / 4) * 4),
      };
      const groups = Math.ceil(c.count / 256);
      const gx = Math.min(groups, this.maxWorkgroupsPerDim);
      this.dispatch(
        U8_KERNEL,
        [srcRange, t.slice(c.start, c.count)],
        { n: c.count, scale: opts.scale ?? 1, shift: opts.shift ?? 0 },
        [gx, Math.ceil(groups / gx)],
      );
    }
    this.pool.release(src);
    return t;
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

  /** Exempts a tensor from tidy scopes (parameters, optimiser state, running statistics). */
  keep(t: Tensor): Tensor {
    t.kept = true;
    for (const s of this.scopes) s.delete(t);
    return t;
  }

  async readTensor(t: Tensor): Promise<Float32Array> {
    const bytes = t.size * 4;
    if (bytes === 0) return new Float32Array(0);
    const staging = this.device.createBuffer({
      size: bytes,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    this.ensureEncoderOutsidePass().copyBufferToBuffer(t.storage.buffer, 0, staging, 0, bytes);
    this.flush();
    this.stats.readbacks++;
    await staging.mapAsync(GPUMapMode.READ);
    const out = new Float32Array(staging.getMappedRange().slice(0));
    staging.unmap();
    staging.destroy();
    this.throwGpuErrors();
    return out;
  }

  // ---- scopes and autograd ---------------------------------------------------------------------------

  /** Runs fn; disposes every tensor it created except those it returns and kept ones. */
  tidy<T extends TensorTree>(fn: () => T): T {
    const scope = new Set<Tensor>();
    this.scopes.push(scope);
    let result: T;
    try {
      result = fn();
    } finally {
      this.scopes.pop();
    }
    const survivors = new Set<Tensor>();
    collectTensors(result, survivors);
    for (const t of scope) if (!survivors.has(t) && !t.kept) t.dispose();
    const parent = this.scopes.at(-1);
    if (parent) for (const t of survivors) if (scope.has(t)) parent.add(t);
    return result;
  }

  noGrad<T>(fn: () => T): T {
    this.noGradDepth++;
    try {
      return fn();
    } finally {
      this.noGradDepth--;
    }
  }

  get gradEnabled(): boolean {
    return this.noGradDepth === 0;
  }

  /**
   * Records an op for backward when grad mode is on and an input requires grad. `grad` gets the output's
   * gradient and which inputs need one, and returns one gradient (or undefined) per input.
   */
  record(
    op: string,
    inputs: Tensor[],
    output: Tensor,
    saved: Tensor[],
    grad: (dy: Tensor, needs: boolean[]) => (Tensor | undefined)[],
  ): void {
    if (!this.gradEnabled || !inputs.some((t) => t.requiresGrad)) return;
    output.requiresGrad = true;
    const held = [...new Set([...inputs, ...saved])];
    for (const t of held) t.tapeRefs++;
    this.tape.push({ op, inputs, output, held, grad });
  }

  get tapeLength(): number {
    return this.tape.length;
  }

  /** Accumulates d(y·dy)/dp into p.grad for every parameter p that y depends on, then clears the tape. */
  backward(y: Tensor, dy?: Tensor): void {
    const tape = this.tape;
    this.tape = [];
    try {
      runBackward(this, tape, y, dy);
    } finally {
      for (const e of tape) for (const t of e.held) t.releaseTapeRef();
    }
  }

  /** Drops the tape without a backward pass (e.g. after an evaluation forward run with grad on). */
  clearTape(): void {
    const tape = this.tape;
    this.tape = [];
    for (const e of tape) for (const t of e.held) t.releaseTapeRef();
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
    this.pass?.end();
    this.pass = undefined;
    this.encoder = undefined;
    this.ctx.destroy();
  }
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

function collectTensors(v: TensorTree, out: Set<Tensor>): void {
  if (v instanceof Tensor) out.add(v);
  else if (Array.isArray(v)) for (const x of v) collectTensors(x, out);
  else if (v && typeof v === 'object') for (const x of Object.values(v)) collectTensors(x, out);
}
