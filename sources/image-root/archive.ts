// What the tar and zip image roots share: opening the archive for ranged reads (stat, existence, a block cache)
// and member lookup that also tries paths under the one top-level folder every member may share.
import { SourceFileError } from '../../core/errors.ts';
import { storageFor } from '../../core/storage/index.ts';
import { CachedRangeReader } from './range-cache.ts';

/** The archive's size and a ranged reader over it; a missing or unreadable archive is a SourceFileError. */
export async function openArchiveRanges(
  uri: string,
  cache: { blockBytes: number; maxBlocks: number },
): Promise<{ size: number; ranges: CachedRangeReader }> {
  const info = await storageFor(uri)
    .stat(uri)
    .catch((err: unknown) => {
      throw new SourceFileError(uri, `cannot stat image archive: ${(err as Error).message}`, { cause: err });
    });
  if (!info) throw new SourceFileError(uri, 'image archive does not exist');
  return { size: info.size, ranges: new CachedRangeReader(uri, info.size, cache) };
}

/** The single top-level folder every member shares (`images/` in some archives), if there is one. */
export function commonTopFolder(names: Iterable<string>): string | undefined {
  let top: string | undefined;
  for (const name of names) {
    const slash = name.indexOf('/');
    if (slash <= 0) return undefined;
    const first = name.slice(0, slash);
    if (top === undefined) top = first;
    else if (top !== first) return undefined;
  }
  return top;
}

/** The member a checked path names: as given, else under the common top folder. */
export function findMember<T>(
  find: (name: string) => T | undefined,
  topFolder: string | undefined,
  path: string,
): T | undefined {
  const direct = find(path);
  if (direct !== undefined || topFolder === undefined) return direct;
  return find(`${topFolder}/${path}`);
}
