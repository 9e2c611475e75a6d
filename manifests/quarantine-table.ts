// The build's quarantine records as a Parquet table (`quarantine/quarantine.parquet`), queryable like the shards.
import { sha256Hex } from '../core/canonical-json.ts';
import { writeParquet } from '../core/parquet/write.ts';
import { storageFor } from '../core/storage/index.ts';

const FIELDS = [
  { name: 'component', type: 'string' as const },
  { name: 'source', type: 'string' as const },
  { name: 'origin', type: 'string' as const },
  { name: 'stage', type: 'string' as const },
  { name: 'reason', type: 'string' as const },
  { name: 'message', type: 'string' as const },
  { name: 'id', type: 'string' as const, nullable: true },
];

/** Writes the sorted JSON lines of quarantine records; returns the manifest entry. */
export async function writeQuarantineTable(
  layout: { quarantine: string },
  lines: readonly string[],
): Promise<{ path: string; rows: number; bytes: number; sha256: string }> {
  const rows = lines.map((l) => {
    const q = JSON.parse(l) as Record<string, unknown>;
    return Object.fromEntries(
      FIELDS.map((f) => [f.name, q[f.name] === undefined ? (f.nullable ? null : '') : String(q[f.name])]),
    );
  });
  const bytes = await writeParquet({
    fields: FIELDS,
    rows,
    rowGroupSize: 10_000,
    metadata: { 'mixforge.schema': 'mixforge.quarantine/v1' },
  });
  await storageFor(layout.quarantine).writeAtomic(layout.quarantine, bytes);
  return {
    path: 'quarantine/quarantine.parquet',
    rows: rows.length,
    bytes: bytes.byteLength,
    sha256: sha256Hex(bytes),
  };
}
