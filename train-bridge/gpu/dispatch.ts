// Records the dispatches and copies of a step into a command encoder, packs the kernels' uniforms into one
// arena buffer addressed with dynamic offsets, and submits on flush (and, on CPU adapters, every 32 dispatches);
// device errors surface at the next sync.
import { awaitSleeping } from './device-wait.ts';
import type { KernelDef } from './kernel.ts';
import type { BufferRange, PipelineCache } from './pipeline-cache.ts';

const ARENA_BYTES = 1 << 20;
/**
 * On CPU adapters a step is submitted every this many dispatches, so the driver's threads start on the work
 * while the host records the rest (one submit a step left them idle for the whole recording).
 */
const CPU_SUBMIT_EVERY = 32;

export interface DispatchLimits {
  maxBindingBytes: number;
  storageAlign: number;
  uniformAlign: number;
  maxWorkgroupsPerDim: number;
}

export interface DispatchStats {
  dispatches: number;
  submits: number;
  readbacks: number;
}

export class Dispatcher {
  readonly stats: DispatchStats = { dispatches: 0, submits: 0, readbacks: 0 };
  private encoder?: GPUCommandEncoder;
  private pass?: GPUComputePassEncoder;
  private readonly arena = new ArrayBuffer(ARENA_BYTES);
  private readonly arenaView = new DataView(this.arena);
  private arenaOffset = 0;
  private sinceSubmit = 0;
  private readonly uniformBuffer: GPUBuffer;
  /** Validation/out-of-memory errors reported by the device; thrown at the next sync or read-back. */
  private readonly gpuErrors: string[] = [];
  private closed = false;

  constructor(
    private readonly device: GPUDevice,
    private readonly pipelines: PipelineCache,
    private readonly limits: DispatchLimits,
    /** A CPU adapter: the device's work runs on the host's cores, so waits sleep instead of polling. */
    private readonly cpuAdapter = false,
  ) {
    device.addEventListener('uncapturederror', (ev) => {
      this.gpuErrors.push((ev as GPUUncapturedErrorEvent).error.message);
    });
    this.uniformBuffer = device.createBuffer({
      size: ARENA_BYTES,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
  }

  private ensurePass(): GPUComputePassEncoder {
    if (!this.encoder) this.encoder = this.device.createCommandEncoder();
    if (!this.pass) this.pass = this.encoder.beginComputePass();
    return this.pass;
  }

  /** The open encoder with no compute pass open (for copies). */
  encoderOutsidePass(): GPUCommandEncoder {
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
    if (this.closed) throw new Error('engine used after destroy()');
    const k = this.pipelines.get(def);
    this.checkBindings(def, ranges);
    for (const g of [gx, gy, gz]) {
      if (g > this.limits.maxWorkgroupsPerDim)
        throw new Error(`kernel ${def.name}: grid ${grid.join('x')} too large`);
    }
    const bytes = k.uniforms.bytes;
    let offset = Math.ceil(this.arenaOffset / this.limits.uniformAlign) * this.limits.uniformAlign;
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
    const bg = this.pipelines.bindGroup(k, this.uniformBuffer, offset, ranges);
    if (this.pipelines.staticUniformOffsets) pass.setBindGroup(0, bg);
    else pass.setBindGroup(0, bg, [offset]);
    pass.dispatchWorkgroups(gx, gy, gz);
    this.stats.dispatches++;
    if (this.cpuAdapter && ++this.sinceSubmit >= CPU_SUBMIT_EVERY) this.flush();
  }

  private checkBindings(def: KernelDef, ranges: BufferRange[]): void {
    if (ranges.length !== def.storage.length) {
      throw new Error(`kernel ${def.name}: ${ranges.length} bindings given, ${def.storage.length} declared`);
    }
    for (const [i, r] of ranges.entries()) {
      if (r.size > this.limits.maxBindingBytes) {
        throw new Error(
          `kernel ${def.name}: binding ${def.storage[i]?.name} is ${r.size} bytes, over the device's ` +
            `${this.limits.maxBindingBytes}-byte storage binding limit (this operand is not chunked)`,
        );
      }
      if (r.offset % this.limits.storageAlign !== 0) {
        throw new Error(
          `kernel ${def.name}: binding ${def.storage[i]?.name} offset ${r.offset} is not aligned`,
        );
      }
    }
  }

  copy(src: BufferRange, dst: BufferRange): void {
    this.encoderOutsidePass().copyBufferToBuffer(
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
    this.sinceSubmit = 0;
    this.stats.submits++;
  }

  /** Waits until the GPU has finished everything submitted. */
  async sync(): Promise<void> {
    this.flush();
    await this.waitFor(this.device.queue.onSubmittedWorkDone());
    this.throwGpuErrors();
  }

  /** Awaits a device promise (a map, a queue drain); on CPU adapters without dawn.node's busy poll. */
  waitFor<T>(pending: Promise<T>): Promise<T> {
    return this.cpuAdapter ? awaitSleeping(pending) : pending;
  }

  throwGpuErrors(): void {
    if (this.gpuErrors.length === 0) return;
    const msgs = this.gpuErrors.splice(0);
    throw new Error(`WebGPU reported ${msgs.length} error(s): ${msgs[0]}`);
  }

  /** Drops what is recorded and refuses further dispatches. */
  close(): void {
    this.closed = true;
    this.pass?.end();
    this.pass = undefined;
    this.encoder = undefined;
  }
}
