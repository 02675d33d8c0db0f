// Checks the package's types with arethetypeswrong on a tarball packed into a temporary directory,
// so that no `dbcache-*.tgz` in the checkout is created, overwritten or deleted (`attw --pack .`
// packs into the current directory and deletes the tarball afterwards, whoever made it).
// `--no-build` packs without running `prepack` (the caller has just built dist/).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const attw = path.join(root, 'node_modules', '.bin', process.platform === 'win32' ? 'attw.cmd' : 'attw');
const build = !process.argv.includes('--no-build');

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dbcache-attw-'));
let status = 1;
try {
  const pack = spawnSync(npm, ['pack', '--silent', '--pack-destination', dir, ...(build ? [] : ['--ignore-scripts'])], {
    cwd: root,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const tarball = fs.readdirSync(dir).find((name) => name.endsWith('.tgz'));
  if (pack.status !== 0 || tarball === undefined) {
    console.error(`npm pack failed (status ${pack.status})`);
  } else {
    status = spawnSync(attw, [path.join(dir, tarball), '--profile', 'esm-only'], { cwd: root, stdio: 'inherit' }).status ?? 1;
  }
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
process.exit(status);
