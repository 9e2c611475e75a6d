// conv2d(x, w, {stride, padding, groups}): NHWC input [N,H,W,Cin], HWIO weights [KH,KW,Cin/groups,Cout].
// Depthwise (groups = Cin, any multiplier) runs dedicated kernels; everything else is GEMM: a 1×1 stride-1
// convolution is one directly on x, other shapes go through im2col. Work is cut into batches of images
// when activations exceed one storage binding.
import type { Engine } from '../engine.ts';
import { gemm } from '../gemm/gemm.ts';
import type { GemmShape } from '../gemm/spec.ts';
import {
  DW_STRIP,
  depthwiseForwardDef,
  depthwiseInputGradDef,
  depthwiseWeightGradPartialDef,
} from '../kernels/conv2d-depthwise.ts';
import { grid1d } from '../kernels/elementwise.ts';
import { COL2IM, IM2COL } from '../kernels/im2col.ts';
import { reduceRows } from '../kernels/reduce-rows.ts';
import { shapeString, type Tensor } from '../tensor.ts';

export interface Conv2dOptions {
  stride?: number;
  padding?: number;
  groups?: number;
}

interface Geometry {
  N: number;
  H: number;
  W: number;
  Cin: number;
  Cout: number;
  KH: number;
  KW: number;
  stride: number;
  pad: number;
  groups: number;
  Ho: number;
  Wo: number;
  /** Cin / groups and Cout / groups. */
  Cg: number;
  Og: number;
  depthwise: boolean;
  /** 1×1, stride 1, no padding: x already is the im2col matrix. */
  pointwise: boolean;
  /** Elements of one image of x (H·W·Cin) and of y (Ho·Wo·Cout): the stride of a piece of images. */
  xImg: number;
  yImg: number;
}

function geometry(x: Tensor, w: Tensor, o: Conv2dOptions): Geometry {
  const stride = o.stride ?? 1;
  const pad = o.padding ?? 0;
  const groups = o.groups ?? 1;
  if (x.rank !== 4 || w.rank !== 4)
    throw new Error(`conv2d: x ${shapeString(x.shape)} and w ${shapeString(w.shape)} must be rank 4`);
  const [N, H, W, Cin] = x.shape as [number, number, number, number];
  const [KH, KW, Cg, Cout] = w.shape as [number, number, number, number];
  if (Cin % groups !== 0 || Cout % groups !== 0 || Cg !== Cin / groups) {
    throw new Error(
      `conv2d: x ${shapeString(x.shape)}, w ${shapeString(w.shape)} (HWIO) and groups ${groups} disagree`,
    );
  }
  const Ho = Math.floor((H + 2 * pad - KH) / stride) + 1;
  const Wo = Math.floor((W + 2 * pad - KW) / stride) + 1;
  if (Ho < 1 || Wo < 1)
    throw new Error(`conv2d: ${KH}×${KW} kernel does not fit ${H}×${W} with padding ${pad}`);
  return {
    N,
    H,
    W,
    Cin,
    Cout,
    KH,
    KW,
    stride,
    pad,
    groups,
    Ho,
    Wo,
    Cg,
    Og: Cout / groups,
    depthwise: groups === Cin && groups > 1,
    pointwise: KH === 1 && KW === 1 && stride === 1 && pad === 0,
    xImg: H * W * Cin,
    yImg: Ho * Wo * Cout,
  };
}

/** Images per piece so that x, y and (for im2col) the column matrix of a piece fit one binding. */
function imagesPerPiece(eng: Engine, g: Geometry): number {
  const maxElems = Math.floor(eng.maxBindingBytes / 4) - eng.storageAlign;
  const colPerImage = g.depthwise || g.pointwise ? 0 : g.Ho * g.Wo * g.KH * g.KW * g.Cin;
  const perImage = Math.max(g.xImg, g.yImg, colPerImage);
  const n = Math.floor(maxElems / perImage);
  if (n < 1) throw new Error(`conv2d: one image (${perImage} f32) exceeds a storage binding`);
  return Math.min(n, g.N);
}

/** The piece of n images every conv kernel walks: input and output sizes, padding, where x starts. */
function pieceUniforms(g: Geometry, n: number, xbase: number): Record<string, number> {
  return { N: n, H: g.H, W: g.W, Cin: g.Cin, Ho: g.Ho, Wo: g.Wo, pad: g.pad, xbase };
}

function shapeUniforms(g: Geometry, n: number, xbase: number, ybase: number): Record<string, number> {
  return { ...pieceUniforms(g, n, xbase), Cout: g.Cout, mult: g.Cout / g.Cin, ybase };
}

function im2colUniforms(g: Geometry, n: number, xbase: number, total: number): Record<string, number> {
  return { ...pieceUniforms(g, n, xbase), KH: g.KH, KW: g.KW, stride: g.stride, groups: g.groups, total };
}

/** The `[pixels, groups·k²·Cg]` matrix of images n0 … n0 + n − 1 (a thread per pixel and group). */
function im2col(x: Tensor, g: Geometry, n0: number, n: number, shape: [number, number]): Tensor {
  const eng = x.engine;
  const col = eng.empty(shape);
  const xw = x.window(n0 * g.xImg, n * g.xImg);
  const threads = n * g.Ho * g.Wo * g.groups;
  eng.dispatch(
    IM2COL,
    [xw.range, col.range()],
    im2colUniforms(g, n, xw.base, threads),
    grid1d(eng, threads, 64),
  );
  return col;
}

/** GEMM of the grouped conv: batch = groups, C[p, g·Og + o] = Σ_k col[p, g·Kg + k] · W[k, g·Og + o]. */
function groupedShape(g: Geometry, P: number, lda: number, strideA: number): GemmShape {
  const Kg = g.KH * g.KW * g.Cg;
  return {
    M: P,
    N: g.Og,
    K: Kg,
    batch: g.groups,
    transA: false,
    transB: false,
    lda,
    ldb: g.Cout,
    ldc: g.Cout,
    strideA,
    strideB: g.Og,
    strideC: g.Og,
    alpha: 1,
    beta: 0,
  };
}

function forEachPiece(eng: Engine, g: Geometry, fn: (n0: number, n: number) => void): void {
  const per = imagesPerPiece(eng, g);
  for (let n0 = 0; n0 < g.N; n0 += per) fn(n0, Math.min(per, g.N - n0));
}

/** Windows over images n0 … n0+n−1 of an x-shaped and a y-shaped tensor (either side's value or gradient). */
function pieceWindows(g: Geometry, xLike: Tensor, yLike: Tensor, n0: number, n: number) {
  return { xw: xLike.window(n0 * g.xImg, n * g.xImg), yw: yLike.window(n0 * g.yImg, n * g.yImg) };
}

/**
 * The im2col matrix of a dense conv is kept from the forward for the weight gradient when it is one piece of at
 * most this many bytes (the RGB stem: 3.5 MB at 128², batch 8): rebuilding it cost lavapipe as much as the
 * forward's (6.5 → 3.2 ms a step at 128²). Larger ones are rebuilt, so memory does not grow with resolution.
 */
const KEEP_COL_BYTES = 8 << 20;

function conv2dRaw(x: Tensor, w: Tensor, g: Geometry, keep?: { col?: Tensor }): Tensor {
  const eng = x.engine;
  const y = eng.empty([g.N, g.Ho, g.Wo, g.Cout]);
  forEachPiece(eng, g, (n0, n) => {
    if (g.depthwise) {
      const total = n * g.Ho * Math.ceil(g.Wo / DW_STRIP) * g.Cout;
      const { xw, yw } = pieceWindows(g, x, y, n0, n);
      eng.dispatch(
        depthwiseForwardDef(g.KH, g.KW, g.stride),
        [xw.range, w.range(), yw.range],
        { ...shapeUniforms(g, n, xw.base, yw.base), total },
        grid1d(eng, total, 64),
      );
    } else if (g.pointwise) {
      gemm(groupedShape(g, n * g.H * g.W, g.Cin, g.Cg), x, w, y, { a: n0 * g.xImg, c: n0 * g.yImg });
    } else {
      const P = n * g.Ho * g.Wo;
      const K = g.KH * g.KW * g.Cin;
      const col = im2col(x, g, n0, n, [P, K]);
      gemm(groupedShape(g, P, K, g.KH * g.KW * g.Cg), col, w, y, { c: n0 * g.yImg });
      if (keep && n === g.N && P * K * 4 <= KEEP_COL_BYTES) keep.col = col;
      else col.dispose();
    }
  });
  return y;
}

// ---- forward
export function conv2d(x: Tensor, w: Tensor, o: Conv2dOptions = {}): Tensor {
  const g = geometry(x, w, o);
  const keep: { col?: Tensor } = {};
  const y = conv2dRaw(x, w, g, keep);
  const col = keep.col;
  x.engine.record('conv2d', [x, w], y, col ? [x, w, col] : [x, w], (dy, needs, into) => [
    needs[0] ? conv2dInputGrad(dy, w, g, into[0]) : undefined,
    needs[1] ? conv2dWeightGrad(dy, x, w, g, col) : undefined,
  ]);
  // Held by the tape when recorded (released with it), freed now otherwise.
  col?.dispose();
  return y;
}

// ---- gradient: input (added into `into`, the tape's gradient so far, when given)
function conv2dInputGrad(dy: Tensor, w: Tensor, g: Geometry, into?: Tensor): Tensor {
  const eng = dy.engine;
  const dx = into ?? eng.empty([g.N, g.H, g.W, g.Cin]);
  const acc = into ? 1 : 0;
  forEachPiece(eng, g, (n0, n) => {
    if (g.depthwise) {
      const { xw, yw } = pieceWindows(g, dx, dy, n0, n);
      if (g.stride === 1 && g.Cout === g.Cin && g.KH === g.KW && g.pad <= g.KH - 1) {
        // dx = dy ⋆ rot180(w) with padding k−1−p: the forward's strip kernel with dy as its input.
        const strips = n * g.H * Math.ceil(g.W / DW_STRIP) * g.Cin;
        eng.dispatch(
          depthwiseForwardDef(g.KH, g.KW, 1, true),
          [yw.range, w.range(), xw.range],
          {
            ...shapeUniforms(g, n, yw.base, xw.base),
            H: g.Ho,
            W: g.Wo,
            Ho: g.H,
            Wo: g.W,
            pad: g.KH - 1 - g.pad,
            total: strips,
            acc,
          },
          grid1d(eng, strips, 64),
        );
        return;
      }
      const cpt = g.Cin % 4 === 0 ? 4 : 1;
      const total = (n * g.xImg) / cpt;
      eng.dispatch(
        depthwiseInputGradDef(g.KH, g.KW, g.stride, cpt),
        [yw.range, w.range(), xw.range],
        { ...shapeUniforms(g, n, xw.base, yw.base), total, cgroups: g.Cin / cpt, acc },
        grid1d(eng, total, 64),
      );
      return;
    }
    // dcol_g = dy_g · W_gᵀ
    const P = n * g.Ho * g.Wo;
    const Kg = g.KH * g.KW * g.Cg;
    const dcolShape: GemmShape = {
      M: P,
      N: Kg,
      K: g.Og,
      batch: g.groups,
      transA: false,
      transB: true,
      lda: g.Cout,
      ldb: g.Cout,
      ldc: g.groups * Kg,
      strideA: g.Og,
      strideB: g.Og,
      strideC: Kg,
      alpha: 1,
      beta: 0,
    };
    if (g.pointwise) {
      gemm({ ...dcolShape, beta: acc }, dy, w, dx, { a: n0 * g.yImg, c: n0 * g.xImg });
      return;
    }
    const dcol = eng.empty([P, g.groups * Kg]);
    gemm(dcolShape, dy, w, dcol, { a: n0 * g.yImg });
    const xw = dx.window(n0 * g.xImg, n * g.xImg);
    eng.dispatch(
      COL2IM,
      [dcol.range(), xw.range],
      { ...im2colUniforms(g, n, xw.base, n * g.xImg), acc },
      grid1d(eng, n * g.xImg),
    );
    dcol.dispose();
  });
  return dx;
}

// ---- gradient: weights (tiled partial sums + a reduction; split-K GEMM for the GEMM paths)
function conv2dWeightGrad(dy: Tensor, x: Tensor, w: Tensor, g: Geometry, kept?: Tensor): Tensor {
  const eng = dy.engine;
  if (g.depthwise) {
    const rowsTotal = g.N * g.Ho;
    const cgroups = Math.ceil(g.Cout / 64);
    const KK = g.KH * g.KW;
    // The partial sums (blocks × KK × Cout) must fit one binding too.
    const maxBlocks = Math.floor((eng.maxBindingBytes / 4 - eng.storageAlign) / (KK * g.Cout));
    const nch = Math.max(1, Math.min(rowsTotal, maxBlocks, Math.ceil((eng.targetWorkgroups * 4) / cgroups)));
    let rowsPer = Math.ceil(rowsTotal / nch);
    // Blocks restart at each piece of images, so keep them no longer than one image when pieces exist.
    const per = imagesPerPiece(eng, g);
    if (per < g.N) rowsPer = Math.min(rowsPer, g.Ho);
    let blocksTotal = 0;
    forEachPiece(eng, g, (_n0, n) => {
      blocksTotal += Math.ceil((n * g.Ho) / rowsPer);
    });
    const partial = eng.empty([blocksTotal, KK * g.Cout]);
    let pbase = 0;
    forEachPiece(eng, g, (n0, n) => {
      const { xw, yw } = pieceWindows(g, x, dy, n0, n);
      const rows = n * g.Ho;
      const blocks = Math.ceil(rows / rowsPer);
      eng.dispatch(
        depthwiseWeightGradPartialDef(g.KH, g.KW, g.stride),
        [xw.range, yw.range, partial.range()],
        { ...shapeUniforms(g, n, xw.base, yw.base), rowsPer, rows, pbase },
        [cgroups, blocks],
      );
      pbase += blocks;
    });
    const dw = reduceRows(partial, { B: 1, R: blocksTotal, C: KK * g.Cout, shape: w.shape });
    partial.dispose();
    return dw;
  }
  const dw = eng.empty(w.shape);
  const Kg = g.KH * g.KW * g.Cg;
  let first = true;
  forEachPiece(eng, g, (n0, n) => {
    const P = n * g.Ho * g.Wo;
    // dW_g = col_gᵀ · dy_g, reduced over every output pixel (split-K when M×N is small).
    const s: GemmShape = {
      M: Kg,
      N: g.Og,
      K: P,
      batch: g.groups,
      transA: true,
      transB: false,
      lda: g.pointwise ? g.Cin : g.groups * Kg,
      ldb: g.Cout,
      ldc: g.Cout,
      strideA: Kg,
      strideB: g.Og,
      strideC: g.Og,
      alpha: 1,
      beta: first ? 0 : 1,
    };
    first = false;
    if (g.pointwise) {
      gemm(s, x, dy, dw, { a: n0 * g.xImg, b: n0 * g.yImg });
      return;
    }
    if (kept) {
      gemm(s, kept, dy, dw, { b: n0 * g.yImg });
      return;
    }
    const col = im2col(x, g, n0, n, [P, g.groups * Kg]);
    gemm(s, col, dy, dw, { b: n0 * g.yImg });
    col.dispose();
  });
  return dw;
}
