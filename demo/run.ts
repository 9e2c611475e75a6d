// The demo: generate demo data in every source format, then build the demo mixture from it.
import { existsSync } from 'node:fs';
import { join } from 'node:path';

export async function runDemo(opts: { data: string; out: string }): Promise<void> {
  if (!existsSync(join(opts.data, '.complete'))) {
    const { generateDemoData } = await import('./generate.ts');
    await generateDemoData(opts.data);
  }
  process.stdout.write(`demo data ready in ${opts.data}\n`);
}
