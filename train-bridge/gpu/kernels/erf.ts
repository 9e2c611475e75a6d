// erf in WGSL (which has none): Abramowitz–Stegun 7.1.26 is only 1.5e-7 absolute, enough for f32 GELU.
// Written for `T` (f32 or vec4<f32>, aliased by the elementwise kernels), component-wise.
export const ERF_WGSL = /* wgsl */ `
fn erf_t(x: T) -> T {
  let s = sign(x);
  let a = abs(x);
  let t = 1.0 / (1.0 + 0.3275911 * a);
  let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  return s * (1.0 - poly * exp(-a * a));
}`;
