// `mixforge plan | build | verify | inspect`: the manifest build CLI. Thin: parses flags, calls pipelines/manifests.
import type { Command } from 'commander';
import { normaliseUri } from '../../core/storage/index.ts';
import { intFlag, numberFlag } from '../flags.ts';
import { onStopSignals } from '../signals.ts';

interface SpecFlags {
  set: string[];
}

const collect = (v: string, prev: string[]) => [...prev, v];

async function loadSpecFromFlags(specPath: string, flags: SpecFlags) {
  const { loadSpec } = await import('../../manifests/spec.ts');
  return loadSpec(specPath, { env: process.env, set: flags.set });
}

/**
 * An attached `build --redis`: says at once which build it follows, and on Ctrl-C (or SIGTERM) that the build goes on
 * in the fleet and how to follow or cancel it, then exits; the workers never depended on this process.
 */
function announceFleetBuild(buildId: string, redisUrl: string, stopProgress: () => void): void {
  // redisUrl comes redacted (no password).
  const redis = `--redis ${redisUrl}`;
  const stop = () => {
    stopProgress();
    process.stderr.write(
      `\nbuild ${buildId} goes on in the fleet. Follow it: mixforge status ${buildId} ${redis}; ` +
        `cancel it: mixforge cancel ${buildId} ${redis}\n`,
    );
    process.exit(130);
  };
  // Handlers first: stderr to a pipe is written synchronously, so whoever reads the line may signal at once.
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  process.stderr.write(
    `build ${buildId}: submitted to the fleet; following it (Ctrl-C stops following, not the build)\n`,
  );
}

export function registerBuild(program: Command): void {
  program
    .command('plan <spec>')
    .description(
      'resolve inputs; print per-component record counts and estimated output size (reads a few images per json source)',
    )
    .option('--set <path=value>', 'override a spec field (repeatable)', collect, [])
    .option('--json', 'print the plan summary as JSON')
    .action(async (specPath: string, flags: SpecFlags & { json?: boolean }) => {
      const spec = await loadSpecFromFlags(specPath, flags);
      const { makeBuildContext } = await import('../../pipelines/context.ts');
      const { planBuild, sampleImageBytes, summarisePlan } = await import('../../pipelines/jobs/plan.ts');
      const plan = await planBuild(makeBuildContext(spec, normaliseUri('plan-only')));
      const summary = summarisePlan(spec, plan, await sampleImageBytes(spec, plan));
      if (flags.json) {
        process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
        return;
      }
      process.stdout.write(
        `mixture ${spec.name} (seed ${spec.seed}), ${plan.partitions.length} partitions\n`,
      );
      for (const c of summary.components) {
        process.stdout.write(
          `  ${c.name.padEnd(20)} ${c.format.padEnd(16)} files ${String(c.files).padStart(4)}  records ${c.recordsExact ? '' : '~'}${c.records}  → ~${c.expectedRows} rows  ~${(c.estimatedBytes / 1e6).toFixed(1)} MB\n`,
        );
      }
      process.stdout.write(
        `  total ~${summary.expectedRows} rows, ~${(summary.estimatedBytes / 1e6).toFixed(1)} MB\n`,
      );
    });

  program
    .command('build <spec>')
    .description(
      'build a mixture: plan → contamination-index → ingest → near-dedup (plan, bands, resolve) → select → shuffle → route → write → finalize',
    )
    .requiredOption('--out <uri>', 'output folder or s3:// prefix')
    .option('--set <path=value>', 'override a spec field (repeatable)', collect, [])
    .option('--concurrency <n>', 'jobs in flight (default: number of cores)', intFlag('--concurrency', 1))
    .option(
      '--partition-records <n>',
      'aim for partitions of about n records (parquet: whole row groups; json/jsonl: at most n; default 10000)',
      intFlag('--partition-records', 1),
    )
    .option(
      '--partition-bytes <n>',
      'json/jsonl partitions of at most about n bytes (default 64 MiB)',
      intFlag('--partition-bytes', 1),
    )
    .option('--keep-intermediate', 'keep _build/parts and _build/buckets after finalize')
    .option('--json', 'machine-readable progress events on stdout')
    .option('--redis <url>', 'run on BullMQ workers through this Redis instead of in-process')
    .option('--detach', 'with --redis: enqueue and return at once')
    .option('--force', 'build into an --out folder that holds files mixforge did not write (they are kept)')
    .option(
      '--redis-timeout <s>',
      'with --redis: give up when Redis does not answer within this many seconds (default 10, or $MIXFORGE_REDIS_TIMEOUT)',
      numberFlag('--redis-timeout'),
    )
    .action(
      async (
        specPath: string,
        flags: SpecFlags & {
          out: string;
          concurrency?: number;
          partitionRecords?: number;
          partitionBytes?: number;
          keepIntermediate?: boolean;
          json?: boolean;
          redis?: string;
          detach?: boolean;
          force?: boolean;
          redisTimeout?: number;
        },
      ) => {
        const spec = await loadSpecFromFlags(specPath, flags);
        const { makeBuildContext } = await import('../../pipelines/context.ts');
        const ctx = makeBuildContext(spec, normaliseUri(flags.out), {
          ...(flags.partitionRecords ? { partitionRecords: flags.partitionRecords } : {}),
          ...(flags.partitionBytes ? { partitionBytes: flags.partitionBytes } : {}),
          keepIntermediate: Boolean(flags.keepIntermediate),
        });
        const { progressSink } = await import('../progress.ts');
        const progress = progressSink({ json: Boolean(flags.json), tty: Boolean(process.stderr.isTTY) });
        try {
          if (flags.redis) {
            const { runBuildOnQueue } = await import('../../workers/executor-bullmq.ts');
            const { redactRedisUrl, redisTimeoutFrom, redisUrlFrom } = await import(
              '../../workers/redis-client.ts'
            );
            const redis = redisUrlFrom(flags.redis);
            const manifest = await runBuildOnQueue(ctx, {
              redis,
              redisTimeoutMs: redisTimeoutFrom(flags.redisTimeout),
              detach: Boolean(flags.detach),
              onEvent: progress.sink,
              force: flags.force,
              onSubmitted: flags.detach
                ? undefined
                : (id) => announceFleetBuild(id, redactRedisUrl(redis), progress.stop),
            });
            if (flags.detach) process.stdout.write(`${ctx.buildId}\n`);
            else if (manifest && !flags.json)
              process.stdout.write(
                `${ctx.out}/manifest.json: ${manifest.totals.rows} rows, ${manifest.totals.shards} shards\n`,
              );
            return;
          }
          const { runBuildInProcess } = await import('../../pipelines/executor-inprocess.ts');
          const { BuildInterruptedError } = await import('../../pipelines/build-envelope.ts');
          // First Ctrl-C / SIGTERM: finish cleanly (running jobs stop, no half-written files); a second one exits.
          const stop = new AbortController();
          const offSignals = onStopSignals((_signal, n) => (n === 1 ? stop.abort() : process.exit(130)));
          const manifest = await runBuildInProcess(ctx, {
            concurrency: flags.concurrency,
            onEvent: progress.sink,
            force: flags.force,
            signal: stop.signal,
          })
            .catch((err: unknown) => {
              if (!(err instanceof BuildInterruptedError)) throw err;
              progress.stop();
              process.stderr.write(`${err.message}\n`);
              process.exitCode = 130;
              return undefined;
            })
            .finally(offSignals);
          if (manifest && !flags.json)
            process.stdout.write(
              `${ctx.out}/manifest.json: ${manifest.totals.rows} rows, ${manifest.totals.shards} shards\n`,
            );
        } finally {
          progress.stop();
        }
      },
    );

  program
    .command('verify <out>')
    .description('re-hash every shard and check counts against the manifest; non-zero exit on any mismatch')
    .action(async (out: string) => {
      // Recorded in _build/verify.json, so report.html can state it without re-reading the shards.
      const { verifyAndRecord } = await import('../../manifests/verify-record.ts');
      const problems = await verifyAndRecord(normaliseUri(out));
      if (problems.length) {
        for (const p of problems) process.stderr.write(`mismatch: ${p}\n`);
        process.exitCode = 1;
        return;
      }
      process.stdout.write(`${out}: ok\n`);
    });

  program
    .command('inspect <out>')
    .description('totals, per-source table and a few samples as text')
    .option('--samples <n>', 'samples to print', intFlag('--samples'), 3)
    .option('--source <name>', 'only samples whose source starts with this')
    .action(async (out: string, flags: { samples: number; source?: string }) => {
      const { inspectBuild } = await import('../../manifests/inspect.ts');
      process.stdout.write(await inspectBuild(normaliseUri(out), flags));
    });

  program
    .command('report <out>')
    .description(
      'write report.html: build metadata, components, sub-sources, charts, sample previews, quarantine examples',
    )
    .option('--verify', 'run verify first (re-reads every shard) so the report states a fresh result')
    .action(async (out: string, flags: { verify?: boolean }) => {
      const { writeReport } = await import('../../manifests/report.ts');
      process.stdout.write(`${await writeReport(normaliseUri(out), { verify: flags.verify })}\n`);
    });
}
