// Compiles each kernel once (pipeline creation costs 0.1–2 s on lavapipe) and caches bind groups by the
// exact buffers and ranges they bind (createBindGroup costs ~14 µs, which adds up over a FastViTHD step).
import type { PooledBuffer } from './buffer-pool.ts';
import { type CompiledUniforms, type KernelDef, kernelSource, parseUniforms } from './kernel.ts';

export interface CompiledKernel {
  def: KernelDef;
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
  uniforms: CompiledUniforms;
  id: number;
}

export interface BufferRange {
  buf: PooledBuffer;
  /** Byte offset; a multiple of the device's minStorageBufferOffsetAlignment. */
  offset: number;
  /** Byte size; a multiple of 4. */
  size: number;
}

const MAX_BIND_GROUPS = 8192;

export class PipelineCache {
  private readonly bySource = new Map<string, CompiledKernel>();
  private readonly byDef = new WeakMap<KernelDef, CompiledKernel>();
  private bindGroups = new Map<string, GPUBindGroup>();
  private nextId = 1;
  compileCount = 0;

  /**
   * Uniform offsets baked into each bind group instead of dynamic offsets. lavapipe copies the descriptor set of
   * every bind with a dynamic offset into a fresh 4 KiB mapping (mmap, memset, munmap with a TLB shootdown):
   * ~70–150 µs of CPU per dispatch, half of a small FastViTHD step. Baked offsets cost a bind group per
   * (dispatch position in the arena, buffers), which a repeating training step makes once and then hits; on GPUs
   * dynamic offsets are free and keep the cache small, so CPU adapters alone bake them.
   */
  constructor(
    private readonly device: GPUDevice,
    readonly staticUniformOffsets = false,
  ) {}

  get(def: KernelDef): CompiledKernel {
    const cached = this.byDef.get(def);
    if (cached) return cached;
    const code = kernelSource(def);
    let k = this.bySource.get(code);
    if (!k) {
      const layout = this.device.createBindGroupLayout({
        label: def.name,
        entries: [
          {
            binding: 0,
            visibility: GPUShaderStage.COMPUTE,
            buffer: { type: 'uniform', hasDynamicOffset: !this.staticUniformOffsets },
          },
          ...def.storage.map((s, i) => ({
            binding: i + 1,
            visibility: GPUShaderStage.COMPUTE,
            buffer: { type: s.access === 'read' ? ('read-only-storage' as const) : ('storage' as const) },
          })),
        ],
      });
      const module = this.device.createShaderModule({ label: def.name, code });
      const pipeline = this.device.createComputePipeline({
        label: def.name,
        layout: this.device.createPipelineLayout({ bindGroupLayouts: [layout] }),
        compute: { module, entryPoint: 'main' },
      });
      k = { def, pipeline, layout, uniforms: parseUniforms(def.uniforms), id: this.nextId++ };
      this.bySource.set(code, k);
      this.compileCount++;
    }
    this.byDef.set(def, k);
    return k;
  }

  /** The bind group for these buffers; `uniformOffset` is baked in only with staticUniformOffsets. */
  bindGroup(
    k: CompiledKernel,
    uniform: GPUBuffer,
    uniformOffset: number,
    ranges: BufferRange[],
  ): GPUBindGroup {
    const baked = this.staticUniformOffsets ? uniformOffset : 0;
    let key = `${k.id}@${baked}`;
    for (const r of ranges) key += `|${r.buf.id}:${r.offset}:${r.size}`;
    let bg = this.bindGroups.get(key);
    if (!bg) {
      if (this.bindGroups.size >= MAX_BIND_GROUPS) this.bindGroups = new Map();
      bg = this.device.createBindGroup({
        layout: k.layout,
        entries: [
          { binding: 0, resource: { buffer: uniform, offset: baked, size: k.uniforms.bytes } },
          ...ranges.map((r, i) => ({
            binding: i + 1,
            resource: { buffer: r.buf.buffer, offset: r.offset, size: r.size },
          })),
        ],
      });
      this.bindGroups.set(key, bg);
    }
    return bg;
  }

  /** Drops bind groups that reference a destroyed buffer. */
  forgetBuffer(id: number): void {
    for (const key of [...this.bindGroups.keys()]) {
      if (key.split('|').some((part, i) => i > 0 && part.startsWith(`${id}:`))) this.bindGroups.delete(key);
    }
  }
}
