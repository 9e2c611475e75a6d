// Maps a format name to its reader. Each reader lives in sources/<format>.ts and exports `reader`.
import { MixforgeError } from '../core/errors.ts';
import { SOURCE_FORMATS, type SourceFormat, type SourceReader } from './types.ts';

export function isSourceFormat(x: string): x is SourceFormat {
  return (SOURCE_FORMATS as readonly string[]).includes(x);
}

export async function getReader(format: string): Promise<SourceReader> {
  if (!isSourceFormat(format)) {
    throw new MixforgeError(
      `unknown source format '${format}' (expected one of ${SOURCE_FORMATS.join(', ')})`,
    );
  }
  const mod = (await import(`./${format}.ts`)) as { reader: SourceReader };
  return mod.reader;
}
