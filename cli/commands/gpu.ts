// `mixforge gpu info` (adapter, features, limits) and `mixforge gpu selftest [--json]` (every WebGPU op
// forward and backward against TF.js's CPU backend; exit 1 on any failure).
import type { Command } from 'commander';

export function registerGpu(program: Command): void {
  const gpu = program.command('gpu').description('the WebGPU engine: adapter info and the op selftest');
  gpu
    .command('info')
    .description('print the chosen adapter, its features and limits')
    .option('--adapter <name>', 'require an adapter whose name contains this')
    .option('--json', 'print JSON')
    .action(async (opts: { adapter?: string; json?: boolean }) => {
      const { acquireGpu } = await import('../../train-bridge/gpu/device.ts');
      const ctx = await acquireGpu({ adapterName: opts.adapter });
      try {
        const a = ctx.adapter;
        if (opts.json) {
          process.stdout.write(`${JSON.stringify({ ...a, enabled: ctx.enabled }, null, 2)}\n`);
          return;
        }
        const lines = [
          `adapter      ${a.description || a.device} (vendor ${a.vendor || '?'}, architecture ${a.architecture || '?'})`,
          `kind         ${a.isCpu ? 'CPU implementation' : 'GPU'}`,
          `enabled      ${
            Object.entries(ctx.enabled)
              .filter(([, v]) => v)
              .map(([k]) => k)
              .join(', ') || 'none'
          }`,
          `features     ${a.features.join(', ')}`,
          'limits',
          ...Object.entries(a.limits).map(([k, v]) => `  ${k.padEnd(44)} ${v}`),
        ];
        process.stdout.write(`${lines.join('\n')}\n`);
      } finally {
        ctx.destroy();
      }
    });
  gpu
    .command('selftest')
    .description('run every op forward and backward against the TF.js CPU reference')
    .option('--json', 'print one JSON report instead of a table')
    .option('--filter <text>', 'only cases whose op or name contains this')
    .option('--adapter <name>', 'require an adapter whose name contains this')
    .option('--full-gemm', 'every GEMM kernel on every parity shape, also GPU-only kernels on a CPU adapter')
    .action(async (opts: { json?: boolean; filter?: string; adapter?: string; fullGemm?: boolean }) => {
      const { runSelftest } = await import('../../train-bridge/gpu/selftest.ts');
      const fmt = (x: number) => (Number.isFinite(x) ? x.toExponential(2) : String(x));
      if (!opts.json)
        process.stdout.write(
          `${'op'.padEnd(24)}${'case'.padEnd(58)}${'max abs'.padStart(10)}${'max rel'.padStart(10)}  worst\n`,
        );
      const report = await runSelftest({
        filter: opts.filter,
        fullGemmParity: opts.fullGemm,
        adapterName: opts.adapter,
        onResult: opts.json
          ? undefined
          : (r) =>
              process.stdout.write(
                `${r.op.padEnd(24)}${r.case.padEnd(58)}${fmt(r.maxAbs).padStart(10)}${fmt(r.maxRel).padStart(10)}  ${r.worst} ${r.pass ? 'ok' : `FAIL${r.error ? `: ${r.error}` : ''}`}\n`,
              ),
      });
      if (opts.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      else {
        const failed = report.results.filter((r) => !r.pass).length;
        process.stdout.write(
          `${report.results.length - failed}/${report.results.length} passed on ${report.adapter} in ${report.seconds.toFixed(1)} s\n`,
        );
      }
      if (!report.pass) process.exitCode = 1;
    });
}
