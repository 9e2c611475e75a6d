// What a compute kernel is, independent of any op: its uniform fields, its storage bindings and its WGSL
// body. The header (uniform struct and binding declarations) is generated so it cannot drift from the
// host-side packing in Engine.dispatch.

export type UniformField = string; // 'name' (u32), 'name:f32' or 'name:i32'

export interface StorageBinding {
  name: string;
  access: 'read' | 'read_write';
  /** WGSL element type; default f32. */
  type?: string;
}

export interface KernelDef {
  /** Shows up in errors and pipeline labels. */
  name: string;
  uniforms: UniformField[];
  storage: StorageBinding[];
  /** WGSL after the generated header; must declare `@compute fn main`. The uniforms are `P.<name>`. */
  body: string;
  /** Extra text before the header (e.g. `enable subgroups;`). */
  enable?: string;
}

export interface CompiledUniforms {
  fields: { name: string; type: 'u32' | 'f32' | 'i32' }[];
  /** Struct size in bytes, a multiple of 16. */
  bytes: number;
}

export function parseUniforms(fields: UniformField[]): CompiledUniforms {
  const parsed = fields.map((f) => {
    const [name, type = 'u32'] = f.split(':');
    if (type !== 'u32' && type !== 'f32' && type !== 'i32')
      throw new Error(`uniform ${f}: unknown type ${type}`);
    return { name: name as string, type: type as 'u32' | 'f32' | 'i32' };
  });
  if (parsed.length === 0) parsed.push({ name: '_unused', type: 'u32' });
  while (parsed.length % 4 !== 0) parsed.push({ name: `_pad${parsed.length}`, type: 'u32' });
  return { fields: parsed, bytes: parsed.length * 4 };
}

export function kernelSource(k: KernelDef): string {
  const u = parseUniforms(k.uniforms);
  const lines: string[] = [];
  if (k.enable) lines.push(k.enable);
  lines.push(`struct Params { ${u.fields.map((f) => `${f.name}: ${f.type},`).join(' ')} }`);
  lines.push('@group(0) @binding(0) var<uniform> P: Params;');
  k.storage.forEach((s, i) => {
    const access = s.access === 'read' ? 'read' : 'read_write';
    lines.push(`@group(0) @binding(${i + 1}) var<storage, ${access}> ${s.name}: array<${s.type ?? 'f32'}>;`);
  });
  lines.push(k.body);
  return lines.join('\n');
}

/** WGSL helper: the linear index of this invocation in a 2-D grid of 1-D workgroups of size WG. */
export const LINEAR_INDEX = /* wgsl */ `
fn linear_index(wid: vec3u, nwg: vec3u, lid: u32, wg: u32) -> u32 {
  return (wid.y * nwg.x + wid.x) * wg + lid;
}`;

/**
 * WGSL that stores `value` at `target`, or adds it to what is there when the uniform `acc` is 1 (a gradient
 * kernel writing into the tape's gradient so far: `target + value`, the tape's own sum, one dispatch less).
 */
export function storeOrAdd(target: string, value: string): string {
  return `if (P.acc == 1u) { ${target} = ${target} + ${value}; } else { ${target} = ${value}; }`;
}
