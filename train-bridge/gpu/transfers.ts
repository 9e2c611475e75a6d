// Moving bytes between host and device: queued writes (through a reused staging copy for SharedArrayBuffer
// memory, which dawn.node refuses) and mapped read-backs that flush the recorded work first.
import type { Dispatcher } from './dispatch.ts';

/** Largest chunk copied through host staging per writeBuffer (uploads from SharedArrayBuffer memory). */
const HOST_STAGING_BYTES = 16 << 20;

export class HostTransfers {
  private hostStaging = new Uint8Array(0);

  constructor(
    private readonly device: GPUDevice,
    private readonly dispatcher: Dispatcher,
  ) {}

  /**
   * Queues a write of the first `byteLength` bytes of `view` to the start of `buffer`, after everything
   * recorded so far (a pooled buffer may still be read by unsubmitted commands). writeBuffer copies at
   * call time, so the staging buffer is free again as soon as it returns.
   */
  write(buffer: GPUBuffer, view: ArrayBufferView, byteLength: number): void {
    this.dispatcher.flush();
    if (byteLength === 0) return;
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

  /** The first `bytes` bytes of `buffer`, once every recorded command before this call has run. */
  async read(buffer: GPUBuffer, bytes: number): Promise<ArrayBuffer> {
    if (bytes === 0) return new ArrayBuffer(0);
    const staging = this.device.createBuffer({
      size: bytes,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    this.dispatcher.encoderOutsidePass().copyBufferToBuffer(buffer, 0, staging, 0, bytes);
    this.dispatcher.flush();
    this.dispatcher.stats.readbacks++;
    await this.dispatcher.waitFor(staging.mapAsync(GPUMapMode.READ));
    const out = staging.getMappedRange().slice(0);
    staging.unmap();
    staging.destroy();
    this.dispatcher.throwGpuErrors();
    return out;
  }
}
