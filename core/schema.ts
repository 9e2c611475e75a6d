// The sample schema shared by every part of mixforge (DESIGN.md, `mixforge.sample/v1`).
// Readers yield RawRecords; transforms turn them into Samples; anything rejected becomes a QuarantineRecord.

export const SAMPLE_SCHEMA_VERSION = 'mixforge.sample/v1';

/** LLaVA roles. `system` is only allowed as the first turn. */
export type Role = 'human' | 'gpt' | 'system';

export interface Turn {
  from: Role;
  value: string;
}

/** A conversation turn as a source spells it, before normalisation (roles not yet checked). */
export interface RawTurn {
  from: string;
  value: string;
}

/** One image as a reader found it: the original encoded bytes and, for referenced images, the path. */
export interface RawImage {
  bytes: Uint8Array;
  /** Relative path (json/jsonl sources) or parquet `path` field, when the source gave one. */
  path?: string;
}

/** What a reader yields for one record of its source, before normalisation. */
export interface RawRecord {
  /** The id as the source spells it (unique within the source file set where the source is sane). */
  id: string;
  /** Dataset family and subset, e.g. `llava-onevision/chartqa`. */
  source: string;
  /** URI + locator: `#row=`, `#line=`, `#member=`, `#item=`. */
  origin: string;
  images: RawImage[];
  conversations: RawTurn[];
  /**
   * Fields the source carried beyond the schema (data_source, model, DocMatix text sources, extra columns):
   * JSON values only, stored in the sample's `metadata`.
   */
  meta: Record<string, unknown>;
}

/** An image after validation: bytes plus what sharp read from them. */
export interface SampleImage {
  bytes: Uint8Array;
  width: number;
  height: number;
  /** `jpeg` | `png` | `webp` | `gif` | ... as sharp names it. */
  format: string;
}

/** One row of a built mixture. */
export interface Sample {
  id: string;
  source: string;
  images: SampleImage[];
  conversations: Turn[];
  origin: string;
  /** Keyed 64-bit hash of `id` under the mixture seed: the global order. */
  key: bigint;
  /**
   * The record's extra source fields as canonical JSON (keys sorted, so shards stay byte-identical); `{}` when
   * there are none. Absent on samples from shards written before the column existed.
   */
  metadata?: string;
}
