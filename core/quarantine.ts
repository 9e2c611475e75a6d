// Quarantine records: every rejected record is kept with a reason from a fixed list, never silently dropped.
// The list is documented in docs/quarantine.md; add a reason there when adding it here.

export const QUARANTINE_REASONS = [
  // reading
  'unreadable-record', // the row/line could not be parsed at all (bad JSON, undecodable parquet value)
  'missing-field', // a required field is absent or null
  'wrong-type', // a field has the wrong type
  'missing-image', // a referenced image does not exist under its root
  'unsafe-image-path', // a path escapes its image root (.., absolute, symlink out)
  'missing-id', // the record has no id and the source does not derive ids (`ids: derive`)
  'unsupported-modality', // video or audio (a `video` field, a `<video>` token): mixforge builds image-text data
  // validation
  'image-token-mismatch', // number of <image> tokens != number of images
  'bad-roles', // roles do not alternate human/gpt (optional leading system)
  'empty-turn', // a turn with empty text
  'invalid-utf8', // text is not valid UTF-8 (lone surrogates, U+FFFD from a bad decode)
  'no-conversation', // no turns at all
  'not-a-caption-pair', // the triplet transform needs one image and one gpt caption
  // images
  'image-empty', // zero bytes
  'image-not-an-image', // bytes are not any known image format
  'image-corrupt', // header or pixel data fails to decode
  'image-truncated', // data ends early
  'image-too-large', // decompression bomb: more pixels than limitInputPixels
  'image-animated', // animated input and the policy is to reject
  'image-unsupported-format', // an image format we do not accept (SVG, PDF, raw/scientific formats)
  // build
  'near-duplicate-image', // same text, images within near_dedup.images.max_distance of a kept sample's
  'near-duplicate-text', // text within near_dedup.text.threshold (and images within max_distance) of a kept sample's
] as const;

export type QuarantineReason = (typeof QUARANTINE_REASONS)[number];

export type QuarantineStage = 'read' | 'normalise' | 'validate' | 'image' | 'filter' | 'build';

export interface QuarantineRecord {
  origin: string;
  source: string;
  stage: QuarantineStage;
  reason: QuarantineReason;
  message: string;
  /** The record id when it could be read. */
  id?: string;
}

export function isQuarantineRecord(x: unknown): x is QuarantineRecord {
  return typeof x === 'object' && x !== null && 'reason' in x && 'stage' in x && 'origin' in x;
}
