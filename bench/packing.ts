// Packing efficiency (tokens used / sequence capacity) of the loader's streaming first-fit against naive padding
// and against first-fit decreasing over the whole epoch (the offline bound), on the demo mixture and on a
// synthetic LLaVA-665K-like length distribution (665K samples, the mix of its sources).
//   npx tsx bench/packing.ts [--capacity 2048,4096] [--samples 665000] [--demo-out demo-out]
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { keyedHash64 } from '../core/keyed-hash.ts';
import { runDemo } from '../demo/run.ts';
import { MixedStreamingDataset } from '../train-bridge/loader/mixed-dataset.ts';
import { packFirstFit, packFirstFitDecreasing } from '../train-bridge/loader/packing.ts';
import { readTokenCounts, writeTokenCounts } from '../train-bridge/loader/token-counts.ts';

const { values: args } = parseArgs({
  options: {
    capacity: { type: 'string', default: '2048,4096' },
    samples: { type: 'string', default: '665000' },
    'demo-out': { type: 'string', default: 'demo-out' },
  },
});
const capacities = args.capacity.split(',').map(Number);

/**
 * LLaVA-1.5 665K by source (sample counts from its paper's data card), text tokens drawn log-uniformly in a range
 * typical of each source, plus 256 image tokens (FastViTHD at 1024²) for every image sample.
 */
const MIX_665K = [
  {
    name: 'short VQA (VQAv2, GQA, OKVQA, A-OKVQA, OCR-VQA), grouped',
    share: 310,
    text: [40, 400],
    image: true,
  },
  { name: 'LLaVA-Instruct conversation / detail / reasoning', share: 158, text: [100, 800], image: true },
  { name: 'RefCOCO / Visual Genome, grouped', share: 134, text: [150, 1200], image: true },
  { name: 'TextCaps', share: 22, text: [30, 90], image: true },
  { name: 'ShareGPT (text only)', share: 40, text: [200, 3000], image: false },
];

function syntheticLengths(n: number): number[] {
  const total = MIX_665K.reduce((a, s) => a + s.share, 0);
  const u = (i: number, what: string) =>
    Number(keyedHash64(0, `bench/packing/${what}`, String(i)) >> 11n) / 2 ** 53;
  return Array.from({ length: n }, (_, i) => {
    let x = u(i, 'source') * total;
    let src = MIX_665K[0];
    for (const s of MIX_665K) {
      src = s;
      x -= s.share;
      if (x < 0) break;
    }
    const [lo, hi] = src.text;
    const text = Math.round(lo * (hi / lo) ** u(i, 'length'));
    return text + (src.image ? 256 : 0);
  });
}

function efficiency(lengths: readonly number[], capacity: number) {
  const used = lengths.reduce((a, l) => a + Math.min(l, capacity), 0);
  const ratio = (sequences: number) => used / (sequences * capacity);
  // Naive: one sample per sequence, padded to the capacity; and batches of 8 padded to their longest sample.
  const naive = ratio(lengths.length);
  let padded = 0;
  for (let b = 0; b < lengths.length; b += 8) {
    const batch = lengths.slice(b, b + 8).map((l) => Math.min(l, capacity));
    padded += batch.length * Math.max(...batch);
  }
  const firstFit = (window: number) =>
    ratio(
      [...packFirstFit((i) => ({ ref: i, length: lengths[i] }), lengths.length, { capacity, window })].length,
    );
  return {
    'pad to capacity': naive,
    'pad to batch max (8)': used / padded,
    'first-fit, window 16': firstFit(16),
    'first-fit, window 64 (default)': firstFit(64),
    'first-fit, window 256': firstFit(256),
    'first-fit decreasing, whole epoch (bound)': ratio(packFirstFitDecreasing(lengths, capacity)),
  };
}

function print(title: string, lengths: number[]): void {
  const sorted = [...lengths].sort((a, b) => a - b);
  const q = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
  console.log(
    `\n${title}: ${lengths.length} samples, tokens p10 ${q(0.1)} / median ${q(0.5)} / p90 ${q(0.9)} / max ${q(1)}`,
  );
  for (const capacity of capacities) {
    const e = efficiency(lengths, capacity);
    const ffd = e['first-fit decreasing, whole epoch (bound)'];
    console.log(`  capacity ${capacity}`);
    for (const [name, v] of Object.entries(e))
      console.log(
        `    ${name.padEnd(44)} ${(100 * v).toFixed(1).padStart(5)} %   ×bound ${(v / ffd).toFixed(3)}`,
      );
  }
}

async function demoLengths(): Promise<number[]> {
  const out = resolve(args['demo-out']);
  if (!existsSync(join(out, 'manifest.json'))) await runDemo({ data: 'demo-data', out });
  const manifest = join(out, 'manifest.json');
  await writeTokenCounts(manifest, { resolution: 1024 });
  const counts = await readTokenCounts(manifest, 1024);
  // In the loader's order (the order packing sees).
  const mix = new MixedStreamingDataset([{ manifest, weight: 1 }]);
  await mix.open();
  const lengths: number[] = [];
  for (const { stream, item } of mix.itemsFrom(0, [0])) {
    const at = mix.addressOf(stream, item);
    lengths.push(counts[at.shard][at.group * 256 + at.row]);
  }
  return lengths;
}

print('demo mixture (1024², conv_qwen_2 + 256 image tokens)', await demoLengths());
print('synthetic LLaVA-665K-like', syntheticLengths(Number(args.samples)));
