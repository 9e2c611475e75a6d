// The engine's built-in fill kernel: y[i] = value (zeros, ones, the backward seed).
import type { KernelDef } from '../kernel.ts';

export const FILL_KERNEL: KernelDef = {
  name: 'fill',
  uniforms: ['n', 'value:f32'],
  storage: [{ name: 'y', access: 'read_write' }],
  body: /* wgsl */ `
@compute @workgroup_size(256) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (wid.y * nwg.x + wid.x) * 256u + li;
  if (i < P.n) { y[i] = P.value; }
}`,
};
