// The engine's built-in byte-upload kernel: bytes packed four to a u32 become f32 as x·scale + shift, so
// images cross the bus at a quarter of their f32 size.
import type { KernelDef } from '../kernel.ts';

export const U8_TO_F32_KERNEL: KernelDef = {
  name: 'u8_to_f32',
  uniforms: ['n', 'scale:f32', 'shift:f32'],
  storage: [
    { name: 'src', access: 'read', type: 'u32' },
    { name: 'y', access: 'read_write' },
  ],
  body: /* wgsl */ `
@compute @workgroup_size(256) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (wid.y * nwg.x + wid.x) * 256u + li;
  if (i >= P.n) { return; }
  let byte = (src[i / 4u] >> ((i % 4u) * 8u)) & 255u;
  y[i] = f32(byte) * P.scale + P.shift;
}`,
};
