// Acquires a WebGPU device through dawn.node with the adapter's full limits and the optional features we use.
// The one place that knows about the `webgpu` package; everything else sees a plain GPUDevice.
import { create, globals } from 'webgpu';
import { MixforgeError } from '../../core/errors.ts';
import { withNativeStderrFiltered } from './native-stderr.ts';

export class GpuUnavailableError extends MixforgeError {
  override name = 'GpuUnavailableError';
}

const INSTALL_HINT =
  'No WebGPU adapter found. Install a Vulkan driver: on Debian 12 `apt-get install -t bookworm-backports ' +
  'mesa-vulkan-drivers` (lavapipe for CPU-only machines; Mesa 22 from plain bookworm is rejected by Dawn), ' +
  'on NVIDIA machines the proprietary driver with its Vulkan ICD. Check with `vulkaninfo --summary`.';

/** Optional features enabled whenever the adapter has them. */
const WANTED_FEATURES = ['shader-f16', 'subgroups', 'timestamp-query'] as const;

export interface AdapterDescription {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** A CPU implementation (lavapipe/llvmpipe/SwiftShader): few cores, so kernels prefer fewer workgroups. */
  isCpu: boolean;
  features: string[];
  limits: Record<string, number>;
}

export interface GpuContext {
  device: GPUDevice;
  adapter: AdapterDescription;
  /** Which of WANTED_FEATURES were enabled on the device. */
  enabled: { shaderF16: boolean; subgroups: boolean; timestampQuery: boolean };
  destroy(): void;
}

export interface AcquireOptions {
  powerPreference?: GPUPowerPreference;
  /** Substring matched (case-insensitively) against the adapter's description/device/vendor. */
  adapterName?: string;
  log?: (line: string) => void;
  /**
   * Worker threads of Mesa's llvmpipe/lavapipe (`LP_NUM_THREADS`), applied when this call creates the process's
   * WebGPU instance and the variable is unset (the user's setting wins); other adapters ignore it. See
   * `lavapipeThreadsFor`.
   */
  lavapipeThreads?: number;
}

/**
 * Forward FLOPs of one training pass below which lavapipe runs it faster with no worker pool (0 threads): such a
 * step is hundreds of small dispatches, and handing each to the pool costs ~45 µs of CPU and ~60 µs of wall against
 * ~3 and ~15 µs when the queue thread runs it, while the host records on the other core. fastvithd-tiny, batch 8:
 * 24 MFLOPs at 64² (56–62 → 39–58 ms a step), 96 at 128² (133 → 119 ms), 384 at 256² (377–471 → 531–808 ms, so
 * the pool stays there); docs/benchmarks.md, "Overlap and waiting".
 */
export const SMALL_PASS_FLOPS = 150e6;

/** The `lavapipeThreads` for passes of `forwardFlops`: 0 for small ones, lavapipe's default (all cores) otherwise. */
export function lavapipeThreadsFor(forwardFlops: number): number | undefined {
  return forwardFlops < SMALL_PASS_FLOPS ? 0 : undefined;
}

function limitsObject(limits: GPUSupportedLimits): Record<string, number> {
  const out: Record<string, number> = {};
  // GPUSupportedLimits exposes its values as prototype getters, so iterate with for..in.
  for (const key in limits) {
    const v = (limits as unknown as Record<string, unknown>)[key];
    if (typeof v === 'number') out[key] = v;
  }
  return out;
}

export function describeAdapter(adapter: GPUAdapter): AdapterDescription {
  const info = adapter.info;
  const text = `${info.vendor} ${info.architecture} ${info.device} ${info.description}`.toLowerCase();
  return {
    vendor: info.vendor,
    architecture: info.architecture,
    device: info.device,
    description: info.description,
    isCpu: /llvmpipe|lavapipe|swiftshader|cpu/.test(text),
    features: [...adapter.features].sort(),
    limits: limitsObject(adapter.limits),
  };
}

let gpuSingleton: GPU | undefined;
function gpuEntry(): GPU {
  if (!gpuSingleton) {
    Object.assign(globalThis, globals);
    gpuSingleton = create([]);
  }
  return gpuSingleton;
}

/**
 * Dawn prints these two lines (from native code, straight to fd 2) whenever an instance enumerates lavapipe, whose
 * Vulkan limits exceed Dawn's caps. They say nothing actionable, so they are dropped; any other line passes.
 */
const DAWN_NOISE =
  /^Warning: maxDynamic(Uniform|Storage)BuffersPerPipelineLayout artificially reduced from \d+ to \d+/;

export async function acquireGpu(opts: AcquireOptions = {}): Promise<GpuContext> {
  // llvmpipe reads it when Dawn first enumerates the adapters, so only before the instance exists.
  if (opts.lavapipeThreads !== undefined && !gpuSingleton && process.env.LP_NUM_THREADS === undefined)
    process.env.LP_NUM_THREADS = String(opts.lavapipeThreads);
  const gpu = gpuEntry();
  // Dawn enumerates adapters synchronously inside requestAdapter(), which is when it prints.
  const adapter = await withNativeStderrFiltered(DAWN_NOISE, () =>
    gpu.requestAdapter({ powerPreference: opts.powerPreference ?? 'high-performance' }),
  );
  if (!adapter) throw new GpuUnavailableError(INSTALL_HINT);
  const described = describeAdapter(adapter);
  if (opts.adapterName) {
    const want = opts.adapterName.toLowerCase();
    const text = `${described.vendor} ${described.device} ${described.description}`.toLowerCase();
    if (!text.includes(want)) {
      throw new GpuUnavailableError(
        `adapter "${opts.adapterName}" not found; the available adapter is "${described.description || described.device}"`,
      );
    }
  }
  const requiredFeatures = WANTED_FEATURES.filter((f) => adapter.features.has(f)) as GPUFeatureName[];
  // Ask for everything the adapter allows: the defaults (128 MiB bindings, 16 KiB workgroup memory) are
  // lower than what both lavapipe and NVIDIA give.
  const requiredLimits: Record<string, number> = {};
  for (const key of [
    'maxStorageBufferBindingSize',
    'maxBufferSize',
    'maxComputeWorkgroupStorageSize',
    'maxComputeInvocationsPerWorkgroup',
    'maxComputeWorkgroupSizeX',
    'maxComputeWorkgroupSizeY',
    'maxStorageBuffersPerShaderStage',
    'maxComputeWorkgroupsPerDimension',
  ]) {
    const v = described.limits[key];
    if (v !== undefined) requiredLimits[key] = v;
  }
  const device = await adapter.requestDevice({ requiredFeatures, requiredLimits });
  opts.log?.(
    `gpu: ${described.description || described.device} (${described.vendor}, ${described.architecture}); ` +
      `features ${requiredFeatures.join(', ') || 'none'}`,
  );
  return {
    device,
    adapter: described,
    enabled: {
      shaderF16: requiredFeatures.includes('shader-f16'),
      subgroups: requiredFeatures.includes('subgroups'),
      timestampQuery: requiredFeatures.includes('timestamp-query'),
    },
    destroy() {
      device.destroy();
      // Dropping navigator.gpu's instance lets dawn.node's event loop hook go away.
      gpuSingleton = undefined;
    },
  };
}
