// Guards a command's output folder: before writing into a folder that already exists, find files the command did
// not write (a user's own), so `build --out` and `export --dest` stop instead of deleting or overwriting them.
import { MixforgeError } from './errors.ts';
import { storageFor } from './storage/index.ts';

/** The output folder holds files the command did not write; it touched nothing. */
export class ForeignFilesError extends MixforgeError {
  override name = 'ForeignFilesError';
  constructor(
    readonly flag: string,
    readonly root: string,
    readonly files: string[],
  ) {
    const shown = files.slice(0, 5).join(', ') + (files.length > 5 ? ` and ${files.length - 5} more` : '');
    super(
      `${flag} ${root} holds files mixforge did not write: ${shown}. Nothing was changed; ` +
        `move them away, choose another ${flag}, or pass --force to write anyway (other files are never removed)`,
    );
  }
}

/** Every file under `root` (a folder or an s3:// prefix), with its path relative to `root` (with `/`). */
export async function* filesUnder(root: string): AsyncGenerator<{ uri: string; rel: string }> {
  const prefix = `${root.replace(/\/+$/, '')}/`;
  for await (const o of storageFor(root).list(prefix))
    yield { uri: o.uri, rel: o.uri.startsWith(prefix) ? o.uri.slice(prefix.length) : o.uri };
}

/** Relative paths of the files under `root` that `isOwn` does not claim, in listing order. */
export async function foreignFiles(root: string, isOwn: (rel: string) => boolean): Promise<string[]> {
  const found: string[] = [];
  for await (const f of filesUnder(root)) if (!isOwn(f.rel)) found.push(f.rel);
  return found;
}

/** Throws ForeignFilesError when `root` holds a file `isOwn` does not claim, unless `force`. */
export async function refuseForeignFiles(
  flag: string,
  root: string,
  isOwn: (rel: string) => boolean,
  force: boolean | undefined,
): Promise<void> {
  if (force) return;
  const found = await foreignFiles(root, isOwn);
  if (found.length) throw new ForeignFilesError(flag, root, found);
}
