// The contrastive (SigLIP alignment) objective on the shared training loop (trainer-core.ts): FastViTHD and the
// alignment heads, image→text retrieval accuracy, checkpoints that resume bit-exactly.

import { join } from 'node:path';
import type { Engine } from '../gpu/engine.ts';
import * as ops from '../gpu/ops/index.ts';
import type { StreamingDatasetOptions } from '../loader/dataset.ts';
import { FastViTHD, modelConfig } from '../model/fastvithd.ts';
import { initFastViTHD } from '../model/init.ts';
import { loadFastViTHD, locateFastViTHD } from '../model/state-dict.ts';
import { readSafetensorsHeader } from '../safetensors.ts';
import {
  type CheckpointContents,
  contrastiveModelWriter,
  loadCheckpointWeights,
  unpackedLoaderState,
} from './checkpoint.ts';
import { AlignmentHeads, AlignmentModel, retrievalAccuracy } from './objective.ts';
import { type PairBatch, PairStream } from './pairs.ts';
import { contrastiveHeads } from './presets.ts';
import {
  createOptimizer,
  openDataset,
  type PassResult,
  type RunSource,
  resolveRun,
  TrainerCore,
} from './trainer-core.ts';

export interface TrainerOptions extends RunSource {
  manifest: string;
  /** Encoder weights to start from (e.g. published FastViTHD safetensors, either form) instead of a keyed init. */
  encoderWeights?: string;
  loader?: Omit<StreamingDatasetOptions, 'epoch'>;
}

export class Trainer extends TrainerCore<AlignmentModel, PairBatch> {
  static async create(eng: Engine, o: TrainerOptions): Promise<Trainer> {
    const { resumed, config } = await resolveRun(o, 'Trainer');
    const arch = modelConfig(config.model);
    let encoder: FastViTHD;
    if (o.resumeFrom) {
      const header = await readSafetensorsHeader(join(o.resumeFrom, 'encoder.safetensors'));
      encoder = new FastViTHD(arch, { inferenceMode: locateFastViTHD(header.tensors.keys())?.inferenceMode });
    } else if (o.encoderWeights) {
      encoder = await loadFastViTHD(o.encoderWeights, arch);
    } else {
      encoder = new FastViTHD(arch);
      initFastViTHD(encoder, config.seed);
    }
    const heads = new AlignmentHeads(encoder.outChannels, contrastiveHeads(config));
    if (o.resumeFrom) await loadCheckpointWeights(o.resumeFrom, encoder, heads);
    else heads.init(config.seed);
    const model = new AlignmentModel(eng, encoder, heads, config.trainEncoder);
    const optimizer = await createOptimizer(model.weights, config, o.resumeFrom);
    const dataset = await openDataset(o.manifest, o.loader);
    const loaderState = o.resumeFrom ? unpackedLoaderState(resumed?.loader, o.resumeFrom) : undefined;
    const pairs = new PairStream(
      dataset,
      { resolution: config.resolution, text: contrastiveHeads(config).text },
      loaderState,
    );
    return new Trainer(eng, config, model, optimizer, pairs, resumed, loaderState ?? dataset.state());
  }

  protected pass(batch: PairBatch, passes: number): PassResult {
    const { config, eng } = this;
    const r = config.resolution;
    const images = eng.uploadU8(batch.pixels, [config.microBatch, r, r, 3], { scale: 1 / 255 });
    // Each pass's SigLIP loss uses its own micro-batch as negatives; scaling by 1/passes averages the passes.
    const loss = eng.tidy(() => ops.scale(this.model.loss(images, batch.ids), 1 / passes));
    eng.backward(loss);
    images.dispose();
    return { loss, images: config.microBatch };
  }

  protected modelWriter(): CheckpointContents['writeModel'] {
    return contrastiveModelWriter(this.model.encoder, this.model.heads);
  }

  /** Image→text retrieval accuracy among the pairs of `batch` (see AlignmentModel.embed for the BN mode). */
  async retrievalAccuracy(batch: PairBatch, batchNorm: 'eval' | 'batch' = 'eval'): Promise<number> {
    const n = batch.sampleIds.length;
    const r = this.config.resolution;
    const images = this.eng.uploadU8(batch.pixels, [n, r, r, 3], { scale: 1 / 255 });
    const { image, text } = this.eng.tidy(() => this.model.embed(images, batch.ids, batchNorm));
    images.dispose();
    const acc = retrievalAccuracy(await image.read(), await text.read(), n);
    image.dispose();
    text.dispose();
    return acc;
  }

  /** Parameters (host copies, reference names) after downloading them from the engine. */
  async hostParameters(): Promise<Map<string, Float32Array>> {
    await this.model.weights.download();
    const out = new Map<string, Float32Array>();
    for (const [n, t] of this.model.encoder.namedParameters()) out.set(n, t.data.slice());
    for (const [n, t] of this.model.heads.namedParameters()) out.set(n, t.data.slice());
    return out;
  }
}
