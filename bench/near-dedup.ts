// Near-duplicate detection, measured: image recall/precision of the 64-bit DCT hash with bit-sampling LSH on a
// generated corpus (edits of diverse originals, plus unrelated originals), text recall/precision of MinHash LSH on
// edited texts, the hash's cost against ingest's per-image work in the same run, and LSH clustering of 1M synthetic
// image hashes (time and peak RSS).
//   npx tsx bench/near-dedup.ts [--originals 150] [--texts 400] [--signatures 1000000] [--max-distance 10]
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { keyedHash64 } from '../core/keyed-hash.ts';
import {
  hamming64,
  hammingLsh,
  hammingPairs,
  hammingRecall,
  tablesForRecall,
  textBandKeys,
  textBandRecall,
} from '../core/lsh.ts';
import { estimatedJaccard, MINHASH_PERMUTATIONS, minhashSignature } from '../core/minhash.ts';
import { NearDupClusters } from '../core/near-dup-clusters.ts';
import { EDITS, edit, original } from '../dev/near-dup-images.ts';
import { ImageOptionsSchema } from '../transforms/component-options.ts';
import { normaliseImage } from '../transforms/image-normalise.ts';
import { perceptualHash } from '../transforms/perceptual-hash.ts';

const { values: args } = parseArgs({
  options: {
    originals: { type: 'string', default: '150' },
    texts: { type: 'string', default: '400' },
    signatures: { type: 'string', default: '1000000' },
    'max-distance': { type: 'string', default: '10' },
    threshold: { type: 'string', default: '0.7' },
    ngram: { type: 'string', default: '3' },
    bands: { type: 'string', default: '32' },
  },
});
const ORIGINALS = Number(args.originals);
const MAX_DISTANCE = Number(args['max-distance']);
const LSH_BITS = 16;
const LSH_RECALL = 0.99;

sharp.cache(false);
sharp.concurrency(1); // CPU time per image, one libvips thread: comparable on a loaded box

const pct = (x: number) => `${(100 * x).toFixed(1)} %`;
const u = (what: string, i: number) =>
  Number(keyedHash64(0, `bench/near-dedup/${what}`, String(i)) >> 11n) / 2 ** 53;

// ── Images ────────────────────────────────────────────────────────────────────────────────────────────────────
interface Item {
  group: number;
  edit: string;
  bytes: Buffer;
  hi: number;
  lo: number;
}

async function imageCorpus(): Promise<Item[]> {
  const items: Item[] = [];
  for (let i = 0; i < ORIGINALS; i++) {
    const o = await original(i);
    const copies = await Promise.all(EDITS.map((e) => edit(o, e, i)));
    for (const [k, bytes] of [o, ...copies].entries()) {
      const h = await perceptualHash(bytes);
      items.push({
        group: i,
        edit: k === 0 ? 'original' : EDITS[k - 1],
        bytes,
        hi: Number(h >> 32n),
        lo: Number(h & 0xffffffffn),
      });
    }
  }
  // Unrelated images: as many again, originals only, from other seeds.
  for (let i = 0; i < ORIGINALS * 2; i++) {
    const bytes = await original(100_000 + i);
    const h = await perceptualHash(bytes);
    items.push({
      group: -1 - i,
      edit: 'unrelated',
      bytes,
      hi: Number(h >> 32n),
      lo: Number(h & 0xffffffffn),
    });
  }
  return items;
}

function imageQuality(items: Item[], maxDistance: number): void {
  const hi = Uint32Array.from(items, (x) => x.hi);
  const lo = Uint32Array.from(items, (x) => x.lo);
  const tables = tablesForRecall(maxDistance, LSH_BITS, LSH_RECALL);
  const found = new Set<number>();
  hammingPairs(hi, lo, hammingLsh(0, LSH_BITS, tables), maxDistance, (i, j) =>
    found.add(i * items.length + j),
  );
  let truePairs = 0;
  let foundTrue = 0;
  const perEdit = new Map<string, { all: number; found: number }>();
  let groupPairs = 0;
  let groupFound = 0;
  for (let i = 0; i < items.length; i++)
    for (let j = i + 1; j < items.length; j++) {
      if (items[i].group !== items[j].group) continue;
      groupPairs++;
      if (found.has(i * items.length + j)) groupFound++;
      if (items[i].edit !== 'original') continue;
      const e = perEdit.get(items[j].edit) ?? { all: 0, found: 0 };
      e.all++;
      truePairs++;
      if (found.has(i * items.length + j)) {
        e.found++;
        foundTrue++;
      }
      perEdit.set(items[j].edit, e);
    }
  let correct = 0;
  for (const p of found)
    if (items[Math.floor(p / items.length)].group === items[p % items.length].group) correct++;
  const precision = found.size ? correct / found.size : 1;
  console.log(
    `  max_distance ${maxDistance} (LSH ${tables} tables × ${LSH_BITS} bits, recall at d=${maxDistance} ${hammingRecall(maxDistance, LSH_BITS, tables).toFixed(3)}): ` +
      `recall ${pct(foundTrue / truePairs)} (original↔edit, ${truePairs} pairs), ${pct(groupFound / groupPairs)} (any two of a group), ` +
      `precision ${pct(precision)} (${found.size - correct} false of ${found.size} pairs)`,
  );
  console.log(`    per edit: ${[...perEdit].map(([e, c]) => `${e} ${pct(c.found / c.all)}`).join(', ')}`);
}

/** CPU seconds of this process (all threads) spent in fn. */
async function cpuSeconds(fn: () => Promise<void>): Promise<number> {
  const c0 = process.cpuUsage();
  await fn();
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1e6;
}

async function throughput(items: Item[]): Promise<void> {
  const images = items.filter((x) => x.edit === 'original' || x.edit === 'unrelated').map((x) => x.bytes);
  const options = ImageOptionsSchema.parse({});
  const run = (perceptualHash: boolean) =>
    cpuSeconds(async () => {
      for (const b of images) {
        const o = await normaliseImage(b, { ...options, perceptualHash });
        if (!o.ok || (perceptualHash && !o.value.perceptualHash))
          throw new Error('image not normalised/hashed');
      }
    });
  const plain: number[] = [];
  const hashed: number[] = [];
  // Interleaved passes, best of 5 each: load on a shared box hits both alike.
  for (let pass = 0; pass < 5; pass++) {
    plain.push(await run(false));
    hashed.push(await run(true));
  }
  const standalone = await cpuSeconds(async () => {
    for (const b of images) await perceptualHash(b);
  });
  const p = Math.min(...plain);
  const h = Math.min(...hashed);
  const ms = (s: number) => `${((1000 * s) / images.length).toFixed(2)} ms/img`;
  console.log(
    `throughput (${images.length} JPEGs of 320–640 px, one libvips thread, best of 5 interleaved, CPU time): ingest's ` +
      `image work (decode + normalise) ${ms(p)}; with the hash (its thumbnail decode is the decode check) ${ms(h)}: the hash adds ` +
      `${pct((h - p) / p)}. (Hashing from the bytes alone, a second decode: ${ms(standalone)}.)`,
  );
}

// ── Text ──────────────────────────────────────────────────────────────────────────────────────────────────────
const VOCAB = Array.from({ length: 3000 }, (_, i) => {
  const syll = ['ka', 'lo', 'mi', 'ne', 'ru', 'sa', 'ti', 'vo', 'ze', 'pa', 'qu', 'de', 'fo', 'gi'];
  const n = 1 + (i % 3);
  return (
    Array.from({ length: n }, (_, k) => syll[Math.floor(u(`syl${k}`, i) * syll.length)]).join('') +
    (i % 7 === 0 ? '' : String.fromCharCode(97 + (i % 26)))
  );
});
const COMMON = ['the', 'a', 'of', 'in', 'is', 'and', 'what', 'image', 'this', 'on'];

function baseText(i: number): string {
  const n = 60 + Math.floor(u('len', i) * 90);
  const words = Array.from({ length: n }, (_, k) =>
    u(`common${i}`, k) < 0.3
      ? COMMON[Math.floor(u(`cw${i}`, k) * COMMON.length)]
      : VOCAB[Math.floor(u(`w${i}`, k) * VOCAB.length)],
  );
  // Sentences: a capital, a comma now and then, a full stop every ~12 words.
  return words.map((w, k) => (k % 12 === 11 ? `${w}.` : k % 5 === 3 ? `${w},` : w)).join(' ');
}

const TEXT_EDITS = ['whitespace', 'case', 'punctuation', 'insert-1', 'insert-3'] as const;

function editText(t: string, e: (typeof TEXT_EDITS)[number], i: number): string {
  const words = t.split(' ');
  switch (e) {
    case 'whitespace':
      return words.join(i % 2 ? '  ' : ' \n').replace(/\./g, '.\t');
    case 'case':
      return t.toUpperCase();
    case 'punctuation':
      return t.replace(/[.,]/g, '').replace(/ (\S+) /g, (_m, w: string) => ` "${w}"; `);
    case 'insert-1':
    case 'insert-3': {
      const k = e === 'insert-1' ? 1 : 3;
      const out = [...words];
      for (let n = 0; n < k; n++)
        out.splice(
          Math.floor(u(`at${n}`, i) * out.length),
          0,
          VOCAB[Math.floor(u(`ins${n}`, i) * VOCAB.length)],
        );
      return out.join(' ');
    }
  }
}

function textQuality(): void {
  const n = Number(args.texts);
  const ngram = Number(args.ngram);
  const bands = Number(args.bands);
  const threshold = Number(args.threshold);
  const texts: { group: number; edit: string; sig: Uint8Array }[] = [];
  for (let i = 0; i < n; i++) {
    const t = baseText(i);
    texts.push({ group: i, edit: 'original', sig: minhashSignature(t, ngram, 0) });
    for (const e of TEXT_EDITS)
      texts.push({ group: i, edit: e, sig: minhashSignature(editText(t, e, i), ngram, 0) });
  }
  for (let i = 0; i < n * 2; i++)
    texts.push({
      group: -1 - i,
      edit: 'unrelated',
      sig: minhashSignature(baseText(1_000_000 + i), ngram, 0),
    });
  const buckets = new Map<string, number[]>();
  for (const [i, t] of texts.entries())
    for (const k of textBandKeys(t.sig, bands)) {
      const b = buckets.get(k);
      if (b) b.push(i);
      else buckets.set(k, [i]);
    }
  const found = new Set<number>();
  for (const members of buckets.values())
    for (let x = 0; x < members.length; x++)
      for (let y = x + 1; y < members.length; y++) {
        const [i, j] = [members[x], members[y]];
        if (estimatedJaccard(texts[i].sig, texts[j].sig) >= threshold) found.add(i * texts.length + j);
      }
  const perEdit = new Map<string, { all: number; found: number }>();
  for (let i = 0; i < texts.length; i++) {
    if (texts[i].edit !== 'original') continue;
    for (let j = i + 1; j < texts.length && texts[j].group === texts[i].group; j++) {
      const e = perEdit.get(texts[j].edit) ?? { all: 0, found: 0 };
      e.all++;
      if (found.has(i * texts.length + j)) e.found++;
      perEdit.set(texts[j].edit, e);
    }
  }
  const all = [...perEdit.values()].reduce((a, c) => a + c.all, 0);
  const hit = [...perEdit.values()].reduce((a, c) => a + c.found, 0);
  let correct = 0;
  for (const p of found)
    if (texts[Math.floor(p / texts.length)].group === texts[p % texts.length].group) correct++;
  const rows = MINHASH_PERMUTATIONS / bands;
  console.log(
    `text (${n} texts of 60–150 words × ${TEXT_EDITS.length} edits + ${2 * n} unrelated; ngram ${ngram}, ${bands} bands × ${rows} rows, ` +
      `threshold ${threshold}; band recall at J=${threshold}: ${textBandRecall(threshold, bands, rows).toFixed(3)}): ` +
      `recall ${pct(hit / all)} (${all} original↔edit pairs), precision ${pct(found.size ? correct / found.size : 1)} (${found.size - correct} false of ${found.size})`,
  );
  console.log(`  per edit: ${[...perEdit].map(([e, c]) => `${e} ${pct(c.found / c.all)}`).join(', ')}`);
}

// ── 1M signatures ─────────────────────────────────────────────────────────────────────────────────────────────
function clusterMillion(): void {
  const n = Number(args.signatures);
  const bits = 20;
  const tables = tablesForRecall(MAX_DISTANCE, bits, 0.95);
  const hi = new Uint32Array(n);
  const lo = new Uint32Array(n);
  // Every 10th hash is a planted near-duplicate: a copy of the one before, MAX_DISTANCE or fewer bits flipped.
  let planted = 0;
  for (let i = 0; i < n; i++) {
    const h = keyedHash64(0, 'bench/near-dedup/sig', String(i));
    hi[i] = Number(h >> 32n);
    lo[i] = Number(h & 0xffffffffn);
    if (i % 10 === 9) {
      hi[i] = hi[i - 1];
      lo[i] = lo[i - 1];
      // 1..MAX_DISTANCE distinct random bit positions flipped.
      const flips = 1 + (Math.floor(i / 10) % MAX_DISTANCE);
      const positions = new Set<number>();
      for (let f = 0; positions.size < flips; f++)
        positions.add(Number(keyedHash64(0, 'bench/near-dedup/flip', `${i}/${f}`) % 64n));
      for (const p of positions) {
        if (p < 32) hi[i] ^= 1 << p;
        else lo[i] ^= 1 << (p - 32);
      }
      planted++;
    }
  }
  const rss0 = process.memoryUsage().rss;
  let peak = rss0;
  const clusters = new NearDupClusters(n, (a, b) => a < b);
  const lsh = hammingLsh(0, bits, tables);
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  let pairs = 0;
  for (let t = 0; t < tables; t++) {
    hammingPairs(
      hi,
      lo,
      lsh,
      MAX_DISTANCE,
      (i, j) => {
        pairs++;
        clusters.union(i, j);
      },
      [t],
    );
    peak = Math.max(peak, process.memoryUsage().rss);
  }
  const cpu = process.cpuUsage(c0);
  let foundPlanted = 0;
  for (let i = 9; i < n; i += 10) if (clusters.keptFor(i) === clusters.keptFor(i - 1)) foundPlanted++;
  let dropped = 0;
  for (let i = 0; i < n; i++) if (clusters.keptFor(i) !== i) dropped++;
  console.log(
    `1M clustering: ${n} hashes (${planted} planted at distance 1–${MAX_DISTANCE}), ${tables} tables × ${bits} bits: ` +
      `${((performance.now() - t0) / 1000).toFixed(1)} s wall, ${((cpu.user + cpu.system) / 1e6).toFixed(1)} CPU-s, ` +
      `${pairs} pair hits, planted found ${pct(foundPlanted / planted)}, ${dropped} dropped; ` +
      `RSS ${(rss0 / 2 ** 20).toFixed(0)} MiB before, peak ${(peak / 2 ** 20).toFixed(0)} MiB (process maxRSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB)`,
  );
}

// The 1M clustering first, so its RSS is not the image corpus's.
clusterMillion();
const items = await imageCorpus();
console.log(
  `images: ${ORIGINALS} originals × ${EDITS.length} edits (${EDITS.join(', ')}) + ${2 * ORIGINALS} unrelated; 64-bit DCT hash (32×32 greyscale thumbnail, 8×8 low frequencies)`,
);
for (const d of [6, 8, MAX_DISTANCE, 12]) imageQuality(items, d);
{
  // Unrelated pairs closest: what the threshold must stay under.
  const un = items.filter((x) => x.edit === 'original' || x.edit === 'unrelated');
  const ds: number[] = [];
  for (let i = 0; i < un.length; i++)
    for (let j = i + 1; j < un.length; j++) ds.push(hamming64(un[i].hi, un[i].lo, un[j].hi, un[j].lo));
  ds.sort((a, b) => a - b);
  console.log(
    `  unrelated originals: ${ds.length} pairs, smallest distances ${ds.slice(0, 8).join(', ')}, median ${ds[ds.length >> 1]}`,
  );
}
await throughput(items);
textQuality();
