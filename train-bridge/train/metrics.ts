// Per-step training metrics as JSON lines (one object per optimiser update), appended as the run goes; a resumed
// run first drops the lines past its checkpoint so the file reads like one uninterrupted run.
import { appendFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

export interface StepMetrics {
  step: number;
  epoch: number;
  loss: number;
  lr: number;
  gradNorm: number;
  /** Images in this update and the throughput of the update (data loading included). */
  images: number;
  imagesPerSec: number;
  seconds: number;
  /** LM objective: real (unpadded) tokens in this update and their throughput. */
  tokens?: number;
  tokensPerSec?: number;
  /** Packed runs: the token positions the update's packs offered; tokens / packCapacity is the packing efficiency. */
  packCapacity?: number;
}

export class MetricsLog {
  constructor(readonly path: string) {}

  /** Start the log: keep existing lines up to `keepUpToStep` (a resume), or truncate. */
  async open(keepUpToStep = 0): Promise<StepMetrics[]> {
    await mkdir(dirname(this.path), { recursive: true });
    const kept = keepUpToStep > 0 ? (await readMetrics(this.path)).filter((m) => m.step <= keepUpToStep) : [];
    await writeFile(this.path, kept.map((m) => `${JSON.stringify(m)}\n`).join(''));
    return kept;
  }

  async append(m: StepMetrics): Promise<void> {
    await appendFile(this.path, `${JSON.stringify(m)}\n`);
  }
}

export async function readMetrics(path: string): Promise<StepMetrics[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l, i) => {
      try {
        return JSON.parse(l) as StepMetrics;
      } catch {
        throw new Error(`${path}:${i + 1}: not a JSON metrics line`);
      }
    });
}
