// Worker thread of the preprocessing pool: turns encoded images into model input written straight into the
// batch's SharedArrayBuffer (no copy back to the main thread).
import { parentPort } from 'node:worker_threads';
import sharp from 'sharp';
import type { JpegDecoderName } from '../../core/turbojpeg.ts';
import {
  channelAffine,
  channelTables,
  halfTables,
  type PreprocessOptions,
  padColour,
  rgbaToRgb,
  squarePixels,
  writePlanarF16,
  writePlanarF32,
} from './preprocess.ts';

export interface PreprocessTask {
  id: number;
  bytes: Uint8Array;
  out: SharedArrayBuffer;
  /** Element offset of this image in the batch tensor. */
  offset: number;
  opts: PreprocessOptions;
}

export type PreprocessReply = ({ id: number } & PreprocessedImage) | { id: number; error: string };

/** What the pool reports for each image: its source size and which decoder read it. */
export interface PreprocessedImage {
  width: number;
  height: number;
  decoder: JpegDecoderName;
}

// One libvips thread per image: parallelism comes from the pool's workers, one image each.
sharp.concurrency(1);
sharp.cache(false);

const tableCache = new Map<string, { affine: ReturnType<typeof channelAffine>; f16: Uint16Array[] }>();
function tablesFor(opts: PreprocessOptions) {
  const key = `${opts.mean.join(',')}/${opts.std.join(',')}`;
  let t = tableCache.get(key);
  if (!t) {
    t = { affine: channelAffine(opts.mean, opts.std), f16: halfTables(channelTables(opts.mean, opts.std)) };
    tableCache.set(key, t);
  }
  return t;
}

async function handle(task: PreprocessTask): Promise<PreprocessReply> {
  const { opts } = task;
  const { pixels, channels, width, height, decoder } = await squarePixels(
    task.bytes,
    opts.resolution,
    padColour(opts.mean),
    opts.kernel,
  );
  if (opts.dtype === 'u8') {
    const out = new Uint8Array(task.out);
    if (channels === 3) out.set(pixels, task.offset);
    else rgbaToRgb(pixels, out, task.offset);
  } else if (opts.dtype === 'f32')
    writePlanarF32(pixels, tablesFor(opts).affine, new Float32Array(task.out), task.offset, channels);
  else writePlanarF16(pixels, tablesFor(opts).f16, new Uint16Array(task.out), task.offset, channels);
  return { id: task.id, width, height, decoder };
}

parentPort?.on('message', (task: PreprocessTask) => {
  handle(task).then(
    (reply) => parentPort?.postMessage(reply),
    (err: unknown) =>
      parentPort?.postMessage({ id: task.id, error: err instanceof Error ? err.message : String(err) }),
  );
});
