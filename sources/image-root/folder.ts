// Image roots that are plain folders: a local directory (symlinks resolved with realpath and kept inside the
// root) or an S3 prefix (keys are literal, so a checked relative path cannot leave the prefix).
import { readFile as readFileCallback } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import { sep } from 'node:path';
import { promisify } from 'node:util';
import { SourceFileError } from '../../core/errors.ts';
import { joinUri, storageFor } from '../../core/storage/index.ts';
import { type ImageLookup, type ImageRoot, missing, unsafe } from './types.ts';

// The callback readFile is ~1.6x faster than fs/promises readFile for small files (measured: 20K vs 12K
// reads/s of 2 KB files on 2 cores), and image roots read hundreds of thousands of them.
const readFile = promisify(readFileCallback);

function errorCode(err: unknown): string | undefined {
  return (err as { code?: string }).code;
}

export class LocalFolderRoot implements ImageRoot {
  private constructor(
    readonly uri: string,
    /** The root with every symlink resolved: resolved image paths must stay under it. */
    private readonly realRoot: string,
  ) {}

  static async open(uri: string): Promise<LocalFolderRoot> {
    const real = await realpath(uri).catch((err: unknown) => {
      throw new SourceFileError(
        uri,
        `image root does not exist (${errorCode(err) ?? (err as Error).message})`,
      );
    });
    const s = await stat(real);
    if (!s.isDirectory()) throw new SourceFileError(uri, 'image root is not a folder, .zip or .tar');
    return new LocalFolderRoot(uri, real);
  }

  async readChecked(path: string): Promise<ImageLookup> {
    let real: string;
    try {
      real = await realpath(`${this.realRoot}${sep}${path}`);
    } catch (err) {
      const code = errorCode(err);
      if (code === 'ENOENT' || code === 'ENOTDIR')
        return missing(`image '${path}' not found under ${this.uri}`);
      if (code === 'ELOOP') return unsafe(`image '${path}' is a symbolic link loop under ${this.uri}`);
      throw new SourceFileError(this.uri, `cannot resolve image '${path}': ${(err as Error).message}`, {
        cause: err,
      });
    }
    if (!real.startsWith(this.realRoot.endsWith(sep) ? this.realRoot : this.realRoot + sep)) {
      return unsafe(`image '${path}' resolves outside the image root ${this.uri} through a symbolic link`);
    }
    try {
      // Read the resolved path, not the given one, so a symlink swapped in meanwhile is not followed.
      return { found: true, bytes: await readFile(real) };
    } catch (err) {
      const code = errorCode(err);
      if (code === 'ENOENT') return missing(`image '${path}' not found under ${this.uri}`);
      if (code === 'EISDIR') return missing(`image '${path}' under ${this.uri} is a folder, not a file`);
      throw new SourceFileError(this.uri, `cannot read image '${path}': ${(err as Error).message}`, {
        cause: err,
      });
    }
  }
}

/** True for the S3 SDK's "no such key" (directly or wrapped by withRetry). */
function isNotFound(err: unknown): boolean {
  for (
    let e = err as { name?: string; cause?: unknown; $metadata?: { httpStatusCode?: number } } | undefined;
    e;
  ) {
    if (e.name === 'NoSuchKey' || e.name === 'NotFound' || e.$metadata?.httpStatusCode === 404) return true;
    e = e.cause as typeof e;
  }
  return false;
}

export class S3PrefixRoot implements ImageRoot {
  constructor(readonly uri: string) {}

  async readChecked(path: string): Promise<ImageLookup> {
    const key = joinUri(this.uri, path);
    try {
      return { found: true, bytes: await storageFor(key).readAll(key) };
    } catch (err) {
      if (isNotFound(err)) return missing(`image '${path}' not found under ${this.uri}`);
      throw new SourceFileError(this.uri, `cannot read image '${path}': ${(err as Error).message}`, {
        cause: err,
      });
    }
  }
}
