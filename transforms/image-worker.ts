// Worker-thread side of the image pool: receives image bytes and options, runs normaliseImage, replies.
// Started by transforms/image-pool.ts (from an esbuild bundle of this module, core/bundled-worker.ts).
import { parentPort } from 'node:worker_threads';
import sharp from 'sharp';
import { normaliseImage } from './image-normalise.ts';
import type { ImageRequest, ImageResponse } from './image-pool.ts';

if (!parentPort) throw new Error('transforms/image-worker.ts must run in a worker thread');
const port = parentPort;

// Every image is seen once: libvips' operation cache would only hold memory.
sharp.cache(false);

port.on('message', (req: ImageRequest) => {
  normaliseImage(req.bytes, req.options).then(
    (outcome) => {
      if (outcome.ok && outcome.value.changes.length === 0) {
        // The caller still holds the original bytes: do not copy them back.
        const value = { ...outcome.value, image: { ...outcome.value.image, bytes: new Uint8Array(0) } };
        port.postMessage({
          id: req.id,
          outcome: { ok: true, value },
          keptOriginal: true,
        } satisfies ImageResponse);
        return;
      }
      if (!outcome.ok) {
        port.postMessage({ id: req.id, outcome, keptOriginal: false } satisfies ImageResponse);
        return;
      }
      // sharp's output may be external or pooled memory, which cannot be transferred: move an own copy instead.
      const bytes = outcome.value.image.bytes.slice();
      const value = { ...outcome.value, image: { ...outcome.value.image, bytes } };
      port.postMessage(
        { id: req.id, outcome: { ok: true, value }, keptOriginal: false } satisfies ImageResponse,
        [bytes.buffer],
      );
    },
    (err: unknown) => {
      const error = err instanceof Error ? (err.stack ?? err.message) : String(err);
      port.postMessage({ id: req.id, error } satisfies ImageResponse);
    },
  );
});
