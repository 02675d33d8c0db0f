// Builds better-sqlite3's addon for each Node of the test matrix (runtimes/node_modules/node*),
// from the sources npm installed and the headers those Node packages ship, so the side-by-side
// tests also run under Node 22 and 24. The machine's Node uses the addon npm built for it.
// Output: runtimes/better-sqlite3/abi-<NODE_MODULE_VERSION>/better_sqlite3.node (skipped when present).
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createRequire } from 'node:module';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const runtimes = path.join(root, 'runtimes', 'node_modules');
const source = path.dirname(createRequire(path.join(root, 'package.json')).resolve('better-sqlite3/package.json'));
const nodeGyp = path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');

for (const name of fs.existsSync(runtimes) ? fs.readdirSync(runtimes).filter((entry) => /^node\d+$/.test(entry)) : []) {
  const node = path.join(runtimes, name, 'bin', 'node');
  const headers = path.join(runtimes, name, 'node_modules', `node-${process.platform}-${process.arch}`);
  if (!fs.existsSync(node) || !fs.existsSync(path.join(headers, 'include', 'node', 'node.h'))) {
    console.log(`better-sqlite3 for ${name}: no binary or headers in ${path.relative(root, headers)}, not built`);
    continue;
  }
  const abi = execFileSync(node, ['-p', 'process.versions.modules'], { encoding: 'utf8' }).trim();
  const target = path.join(root, 'runtimes', 'better-sqlite3', `abi-${abi}`, 'better_sqlite3.node');
  if (fs.existsSync(target)) continue;
  const work = fs.mkdtempSync(path.join(os.tmpdir(), `better-sqlite3-${name}-`));
  try {
    fs.cpSync(source, work, { recursive: true, filter: (file) => !file.startsWith(path.join(source, 'build')) });
    console.log(`better-sqlite3 for ${name} (ABI ${abi}): building from source…`);
    execFileSync(process.execPath, [nodeGyp, 'rebuild', '--release', `--nodedir=${headers}`, `-j`, String(os.availableParallelism?.() ?? 2)], {
      cwd: work,
      stdio: ['ignore', 'ignore', 'pipe'],
      // Under npm, npm_config_nodedir (the machine's Node headers) would win over --nodedir.
      env: Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^npm_config_(nodedir|target|runtime|disturl|dist_url)$/i.test(key))),
    });
    const built = path.join(work, 'build', 'Release', 'better_sqlite3.node');
    // Loaded by that Node before it is kept: an addon for the wrong ABI is not kept.
    execFileSync(node, ['-e', `process.dlopen({ exports: {} }, ${JSON.stringify(built)})`], { stdio: ['ignore', 'ignore', 'pipe'] });
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.copyFileSync(built, target);
  } catch (error) {
    // Not fatal: the side-by-side tests then report themselves skipped under this Node, with the reason.
    console.log(`better-sqlite3 for ${name}: the build failed, not built (${String(error.stderr ?? error).split('\n').slice(-3).join(' ')})`);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}
