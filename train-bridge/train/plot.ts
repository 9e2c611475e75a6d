// The loss curve as a small standalone SVG (raw loss and a moving average against the step), and as a PNG
// rendered from that SVG by sharp, so a run's folder can be glanced at without tools.
import { writeFile } from 'node:fs/promises';
import sharp from 'sharp';

export interface CurvePoint {
  step: number;
  loss: number;
}

const W = 720;
const H = 360;
const PAD = { left: 64, right: 16, top: 28, bottom: 40 };

/** Moving average over the last `window` points (the first points average what there is). */
export function movingAverage(values: readonly number[], window: number): number[] {
  const out: number[] = [];
  let sum = 0;
  for (let i = 0; i < values.length; i++) {
    sum += values[i];
    if (i >= window) sum -= values[i - window];
    out.push(sum / Math.min(i + 1, window));
  }
  return out;
}

function niceTicks(lo: number, hi: number, count: number): number[] {
  const span = hi - lo || 1;
  const step = 10 ** Math.floor(Math.log10(span / count));
  const mult = [1, 2, 5, 10].find((m) => span / (m * step) <= count) ?? 10;
  const s = mult * step;
  const ticks: number[] = [];
  for (let t = Math.ceil(lo / s) * s; t <= hi + 1e-12; t += s) ticks.push(Number(t.toPrecision(12)));
  return ticks;
}

export function lossCurveSvg(points: readonly CurvePoint[], title: string): string {
  const xs = points.map((p) => p.step);
  const ys = points.map((p) => p.loss);
  const x0 = Math.min(...xs, 0);
  const x1 = Math.max(...xs, 1);
  const y0 = Math.min(...ys, 0);
  const y1 = Math.max(...ys, 1e-9);
  const px = (x: number) => PAD.left + ((x - x0) / (x1 - x0 || 1)) * (W - PAD.left - PAD.right);
  const py = (y: number) => H - PAD.bottom - ((y - y0) / (y1 - y0 || 1)) * (H - PAD.top - PAD.bottom);
  const path = (vals: readonly number[]) =>
    vals.map((v, i) => `${i === 0 ? 'M' : 'L'}${px(xs[i]).toFixed(1)},${py(v).toFixed(1)}`).join(' ');
  const smooth = movingAverage(ys, Math.max(1, Math.round(points.length / 20)));
  const grid = niceTicks(y0, y1, 5)
    .map(
      (t) =>
        `<line x1="${PAD.left}" x2="${W - PAD.right}" y1="${py(t).toFixed(1)}" y2="${py(t).toFixed(1)}" stroke="#ddd"/>` +
        `<text x="${PAD.left - 6}" y="${(py(t) + 4).toFixed(1)}" text-anchor="end">${t}</text>`,
    )
    .join('');
  const xTicks = niceTicks(x0, x1, 6)
    .map((t) => `<text x="${px(t).toFixed(1)}" y="${H - PAD.bottom + 16}" text-anchor="middle">${t}</text>`)
    .join('');
  const esc = (s: string) => s.replace(/[<>&"]/g, (c) => `&#${c.charCodeAt(0)};`);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="11">
<rect width="100%" height="100%" fill="white"/>
<text x="${PAD.left}" y="18" font-size="13">${esc(title)}</text>
${grid}${xTicks}
<text x="${(W + PAD.left) / 2}" y="${H - 8}" text-anchor="middle">step</text>
<path d="${path(ys)}" fill="none" stroke="#9ecae1" stroke-width="1"/>
<path d="${path(smooth)}" fill="none" stroke="#08519c" stroke-width="2"/>
</svg>
`;
}

/** Write `<base>.svg` and `<base>.png`. */
export async function writeLossPlot(
  base: string,
  points: readonly CurvePoint[],
  title: string,
): Promise<void> {
  const svg = lossCurveSvg(points, title);
  await writeFile(`${base}.svg`, svg);
  await writeFile(`${base}.png`, await sharp(Buffer.from(svg)).png().toBuffer());
}
