// Opens an image root from a URI (folder, s3:// prefix, .zip, .tar) and checks every path before reading.
// Folder roots also look inside `<first segment>.tar|.zip` beside them, so per-subset archives need no extraction.
import { SourceFileError } from '../../core/errors.ts';
import { isS3Uri, joinUri, normaliseUri, storageFor } from '../../core/storage/index.ts';
import { LocalFolderRoot, S3PrefixRoot } from './folder.ts';
import { checkImagePath } from './safe-path.ts';
import { GZIP_TAR_ADVICE, TarRoot } from './tar.ts';
import type { ImageLookup, ImageRoot } from './types.ts';
import { ZipRoot } from './zip.ts';

export type { ImageLookup, ImageRoot } from './types.ts';

/**
 * Read the image at an untrusted `rawPath` under `root`. Unsafe paths are reported without any read.
 */
export async function readImage(root: ImageRoot, rawPath: string): Promise<ImageLookup> {
  const check = checkImagePath(rawPath);
  if (!check.safe) return { found: false, reason: 'unsafe-image-path', message: check.message };
  return root.readChecked(check.path);
}

/** A folder root that falls back to `<root>/<segment>.tar` or `.zip` for paths starting with `<segment>/`. */
class FolderWithArchives implements ImageRoot {
  private readonly archives = new Map<string, Promise<{ archive?: ImageRoot; hint?: string }>>();

  constructor(private readonly folder: ImageRoot) {}

  get uri(): string {
    return this.folder.uri;
  }

  private archiveFor(segment: string): Promise<{ archive?: ImageRoot; hint?: string }> {
    let found = this.archives.get(segment);
    if (!found) {
      found = (async () => {
        for (const ext of ['.tar', '.zip']) {
          const uri = joinUri(this.uri, segment + ext);
          if (await storageFor(uri).stat(uri)) return { archive: await openArchive(uri) };
        }
        const gz = joinUri(this.uri, `${segment}.tar.gz`);
        if (await storageFor(gz).stat(gz)) return { hint: `; ${gz} exists but ${GZIP_TAR_ADVICE}` };
        return {};
      })();
      this.archives.set(segment, found);
    }
    return found;
  }

  async readChecked(path: string): Promise<ImageLookup> {
    const direct = await this.folder.readChecked(path);
    if (direct.found || direct.reason !== 'missing-image') return direct;
    const slash = path.indexOf('/');
    if (slash <= 0) return direct;
    const { archive, hint } = await this.archiveFor(path.slice(0, slash));
    if (archive) {
      const inArchive = await archive.readChecked(path);
      if (inArchive.found) return inArchive;
      const withoutSegment = await archive.readChecked(path.slice(slash + 1));
      if (withoutSegment.found) return withoutSegment;
      return { ...direct, message: `${direct.message}, nor in ${archive.uri}` };
    }
    return hint ? { ...direct, message: direct.message + hint } : direct;
  }
}

function isGzipTarName(uri: string): boolean {
  return /\.(tar\.gz|tgz)(_part\d+)?$/i.test(uri);
}

async function openArchive(uri: string): Promise<ImageRoot> {
  const info = await storageFor(uri).stat(uri);
  const key = `${uri}|${info?.size}|${info?.etag ?? info?.mtimeMs}`;
  let root = archiveCache.get(key);
  if (!root) {
    root = /\.zip$/i.test(uri) ? ZipRoot.open(uri) : TarRoot.open(uri);
    // A failed open is not cached: the next partition retries.
    root.catch(() => archiveCache.delete(key));
    archiveCache.set(key, root);
    if (archiveCache.size > ARCHIVE_CACHE_SIZE)
      archiveCache.delete(archiveCache.keys().next().value as string);
  }
  return root;
}

/** Archive indexes are built once per process and reused by every partition reading the same archive. */
const ARCHIVE_CACHE_SIZE = 8;
const archiveCache = new Map<string, Promise<ImageRoot>>();

/**
 * The image root at `rootUri`: a `.zip` or `.tar` archive, or a folder (local path or s3:// prefix).
 * Compressed tars are refused with instructions; a missing root fails with a SourceFileError.
 */
export async function openImageRoot(rootUri: string): Promise<ImageRoot> {
  const uri = normaliseUri(rootUri);
  if (isGzipTarName(uri)) throw new SourceFileError(uri, GZIP_TAR_ADVICE);
  if (/\.(zip|tar)$/i.test(uri)) return openArchive(uri);
  if (isS3Uri(uri)) return new FolderWithArchives(new S3PrefixRoot(uri.replace(/\/+$/, '')));
  return new FolderWithArchives(await LocalFolderRoot.open(uri));
}
