// What an image root is: somewhere referenced image paths resolve to bytes (a folder, an S3 prefix, a zip or
// tar archive). Lookups report missing or unsafe paths as values so the reader can quarantine and go on.

export type ImageLookup =
  | { found: true; bytes: Uint8Array }
  | { found: false; reason: 'missing-image' | 'unsafe-image-path'; message: string };

export interface ImageRoot {
  /** Where the images live, as given (a path, s3:// prefix, or archive URI). */
  readonly uri: string;
  /**
   * Bytes of the image at `path`, a canonical relative path already accepted by checkImagePath.
   * Never reads outside the root.
   */
  readChecked(path: string): Promise<ImageLookup>;
}

export function missing(message: string): ImageLookup {
  return { found: false, reason: 'missing-image', message };
}

export function unsafe(message: string): ImageLookup {
  return { found: false, reason: 'unsafe-image-path', message };
}
