// The reference's sentinel ids and chat-template text (apple/ml-fastvlm `llava/constants.py`, `conv_qwen_2`):
// shared by the tokenizer, the renderer, the layout and the loss, so they live in one place.

/** Label value the cross-entropy skips (PyTorch's `ignore_index` default, LLaVA's IGNORE_INDEX). */
export const IGNORE_INDEX = -100;

/** Placeholder id where an image's projected tokens are spliced (LLaVA's IMAGE_TOKEN_INDEX). */
export const IMAGE_TOKEN_INDEX = -200;

/** The image placeholder in conversation text. */
export const IMAGE_TOKEN = '<image>';

/** `conv_qwen_2`'s system message: the default when a sample has no system turn of its own. */
export const DEFAULT_SYSTEM_MESSAGE = 'You are a helpful assistant.';

/** FastViTHD downsamples by 64: an R×R image gives (R/64)² projected tokens (256 at 1024²). */
export const FASTVITHD_STRIDE = 64;

/** Projected tokens per image at `resolution` (square, a multiple of 64). */
export function tokensPerImageAt(resolution: number): number {
  if (!Number.isInteger(resolution) || resolution <= 0 || resolution % FASTVITHD_STRIDE !== 0)
    throw new RangeError(`resolution must be a positive multiple of ${FASTVITHD_STRIDE}, got ${resolution}`);
  return (resolution / FASTVITHD_STRIDE) ** 2;
}
