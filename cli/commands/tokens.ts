// `mixforge tokens <manifest>`: write the token-count sidecar (rendered conversation + image tokens per sample at a
// resolution) that packing, length grouping and the report use. One job per shard, in this process or, with
// --redis, on the fleet's `mixforge worker`s (as `build --redis`). Resumable: a rerun counts only missing shards.
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { intFlag } from '../flags.ts';

export function registerTokens(program: Command): void {
  program
    .command('tokens <manifest>')
    .description('count each sample’s training tokens (Qwen2 chat template + image tokens) into tokens/r<R>/')
    .option(
      '--resolution <r>',
      'image resolution (tokens per image = (r/64)²)',
      intFlag('--resolution', 64),
      1024,
    )
    .option(
      '--tokenizer <file>',
      "a checkpoint's tokenizer.json (default: the Qwen2 vocabulary shipped with mixforge)",
    )
    .option('--image-token-position <p>', 'data (default) or front, as `train` renders', (v) => {
      if (v !== 'data' && v !== 'front')
        throw new InvalidArgumentError(`--image-token-position must be data or front, got "${v}"`);
      return v;
    })
    .option('--concurrency <n>', 'shards counted at once (in this process)', intFlag('--concurrency', 1), 2)
    .option('--redis <url>', 'count on BullMQ workers through this Redis instead of in-process')
    .option('--detach', 'with --redis: enqueue and return at once')
    .option(
      '--status',
      'with --redis: say where the fleet stands with this count (after --detach), change nothing',
    )
    .option(
      '--cancel',
      'with --redis: remove this count from the fleet (running shards finish; a rerun resumes)',
    )
    .option('--wait <s>', 'with --cancel: wait this long for running shards to end', intFlag('--wait', 0), 30)
    .action(
      async (
        manifest: string,
        flags: {
          resolution: number;
          tokenizer?: string;
          imageTokenPosition?: 'data' | 'front';
          concurrency: number;
          redis?: string;
          detach?: boolean;
          status?: boolean;
          cancel?: boolean;
          wait: number;
        },
      ) => {
        if (flags.resolution % 64 !== 0)
          throw new InvalidArgumentError(
            `--resolution must be a multiple of 64 (FastViTHD's stride), got ${flags.resolution}`,
          );
        const { normaliseUri } = await import('../../core/storage/index.ts');
        const { writeTokenCounts, tokenCountsDir, tokenCountTask } = await import(
          '../../train-bridge/loader/token-counts.ts'
        );
        const { manifestRoot } = await import('../../manifests/manifest.ts');
        const uri = normaliseUri(manifest);
        const dir = tokenCountsDir(manifestRoot(uri), flags.resolution);
        if ((flags.status || flags.cancel) && !flags.redis)
          throw new InvalidArgumentError(
            `--${flags.status ? 'status' : 'cancel'} acts on the fleet: it needs --redis <url>`,
          );
        if (flags.status && flags.cancel)
          throw new InvalidArgumentError('--status and --cancel: one at a time');
        if (flags.redis) {
          const { openRedis } = await import('../../workers/redis-client.ts');
          const { cancelTask, followTask, submitTask, taskStatus } = await import('../../workers/tasks.ts');
          const { DEFAULT_RETRY } = await import('../../workers/queues.ts');
          const task = await tokenCountTask({
            manifest: uri,
            resolution: flags.resolution,
            imageTokenPosition: flags.imageTokenPosition ?? 'data',
            ...(flags.tokenizer ? { tokenizer: normaliseUri(flags.tokenizer) } : {}),
          });
          const redis = await openRedis(flags.redis);
          try {
            if (flags.status) {
              const s = await taskStatus(redis, task);
              const where =
                s.state === 'absent'
                  ? 'not on this Redis (never submitted, or removed)'
                  : `${s.state}, ${s.done}/${s.total} shards`;
              process.stdout.write(
                `tokens ${s.id}: ${where}${s.failures.length ? `; ${s.failures.join('; ')}` : ''}\n`,
              );
              if (s.state === 'absent' || s.state === 'failed') process.exitCode = 1;
              return;
            }
            if (flags.cancel) {
              const c = await cancelTask(redis, task, { waitMs: flags.wait * 1000 });
              if (!c.found) process.stderr.write(`tokens ${task.id}: not on this Redis, nothing to cancel\n`);
              else if (c.completed)
                process.stderr.write(`tokens ${task.id}: already completed, nothing to cancel\n`);
              else if (c.stillActive.length) {
                process.stderr.write(
                  `tokens ${task.id}: cancelled; still running (cancel again to remove them once they end): ${c.stillActive.join(', ')}\n`,
                );
                process.exitCode = 1;
              } else process.stdout.write(`tokens ${task.id}: cancelled\n`);
              return;
            }
            await submitTask(redis, task, DEFAULT_RETRY);
            process.stderr.write(`tokens ${task.id}: submitted to the fleet (${task.units} shard jobs)\n`);
            if (flags.detach) return;
            await followTask(redis, task, {
              onUnits: (done, total) => process.stderr.write(`tokens: ${done}/${total} shards\n`),
            });
          } finally {
            redis.disconnect();
          }
          process.stdout.write(`${task.units} shards counted on the fleet → ${dir}\n`);
          return;
        }
        let counted = 0;
        let skipped = 0;
        const index = await writeTokenCounts(uri, {
          resolution: flags.resolution,
          tokenizerPath: flags.tokenizer,
          imageTokenPosition: flags.imageTokenPosition,
          concurrency: flags.concurrency,
          onShard: (done, total, skip) => {
            if (skip) skipped++;
            else counted++;
            process.stderr.write(`tokens: ${done}/${total} shards\n`);
          },
        });
        process.stdout.write(
          `${index.shards.length} shards (${counted} counted, ${skipped} already done) → ${dir}\n`,
        );
      },
    );
}
