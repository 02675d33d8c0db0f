import typescript from '@rollup/plugin-typescript';
import { dts } from 'rollup-plugin-dts';
import { builtinModules } from 'node:module';
import { readFileSync } from 'node:fs';

const { dependencies = {} } = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8'));
const externals = [...Object.keys(dependencies), ...builtinModules];
// Dependencies, node: builtins, and their subpaths stay imports.
const external = (id) => id.startsWith('node:') || externals.some((name) => id === name || id.startsWith(`${name}/`));
// A warning is a build error: unresolved imports and circular chunks must not ship silently.
const onwarn = (warning) => {
  throw new Error(`rollup: ${warning.message}`);
};

export default [
  {
    input: 'src/index.ts',
    output: { file: 'dist/index.js', format: 'es', sourcemap: true },
    external,
    onwarn,
    plugins: [typescript({ tsconfig: './tsconfig.build.json', noEmitOnError: true })],
  },
  {
    input: 'src/index.ts',
    output: { file: 'dist/index.d.ts', format: 'es' },
    external,
    onwarn,
    plugins: [dts({ tsconfig: './tsconfig.build.json' })],
  },
];
