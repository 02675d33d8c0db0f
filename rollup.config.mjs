import typescript from '@rollup/plugin-typescript';
import { dts } from 'rollup-plugin-dts';
import { builtinModules } from 'node:module';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const { dependencies = {}, peerDependencies = {} } = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8'));
// Peer dependencies too: tslog (for the CLI's --verbose) may be one.
const packages = [...Object.keys(dependencies), ...Object.keys(peerDependencies), ...builtinModules];
// Dependencies, node: builtins, and their subpaths stay imports.
const isExternal = (id) => id.startsWith('node:') || packages.some((name) => id === name || id.startsWith(`${name}/`));
// A warning is a build error: unresolved imports and circular chunks must not ship silently.
const onwarn = (warning) => {
  throw new Error(`rollup: ${warning.message}`);
};
// No source maps: the output is not minified, so stack traces already name readable lines of the
// shipped dist/ files (maps pointed at src/ files the package does not ship, and were 40% of it).
const library = fileURLToPath(new URL('./src/index.ts', import.meta.url));

export default [
  {
    input: 'src/index.ts',
    output: { file: 'dist/index.js', format: 'es' },
    external: isExternal,
    onwarn,
    plugins: [typescript({ tsconfig: './tsconfig.build.json', noEmitOnError: true })],
  },
  {
    // The CLI uses only the public API: it imports the library build instead of bundling a copy.
    input: 'src/bin.ts',
    output: { file: 'dist/bin.js', format: 'es', banner: '#!/usr/bin/env node', paths: { [library]: './index.js' } },
    external: (id, importer) => isExternal(id) || (importer !== undefined && fileURLToPath(new URL(id, `file://${importer}`)) === library),
    onwarn,
    plugins: [typescript({ tsconfig: './tsconfig.build.json', noEmitOnError: true })],
  },
  {
    input: 'src/index.ts',
    output: { file: 'dist/index.d.ts', format: 'es' },
    external: isExternal,
    onwarn,
    plugins: [dts({ tsconfig: './tsconfig.build.json' })],
  },
];
