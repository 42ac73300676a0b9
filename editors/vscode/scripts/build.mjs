// Bundles the extension (dist/extension.js) or, with --tests, the tests (out/test/*.test.js).
// Type checking is `tsc --noEmit` (npm run typecheck); esbuild only strips types and bundles.
import { build } from 'esbuild';
import { readdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const tests = process.argv.includes('--tests');

if (tests) {
  const dirs = ['test', 'test/unit'];
  const entryPoints = dirs.flatMap((d) =>
    readdirSync(join(root, d)).filter((f) => f.endsWith('.test.ts')).map((f) => join(root, d, f)),
  );
  rmSync(join(root, 'out'), { recursive: true, force: true });
  await build({
    entryPoints,
    outdir: join(root, 'out/test'),
    entryNames: '[name]',
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    packages: 'external',
    sourcemap: 'inline',
    logLevel: 'warning',
  });
} else {
  await build({
    entryPoints: [join(root, 'src/extension.ts')],
    outfile: join(root, 'dist/extension.js'),
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    external: ['vscode'],
    sourcemap: true,
    minify: process.argv.includes('--minify'),
    logLevel: 'warning',
  });
}
