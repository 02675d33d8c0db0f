// The full test matrix (`npm run test:all`, what CI runs): the package checks (build, typecheck,
// publint, arethetypeswrong), then every test file under Deno, Bun, Node 22, Node 24 and the
// machine's Node. Every step runs even when an earlier one failed, so one failing runtime cannot
// hide another; the output of each is passed through as it comes, and the last lines are a summary:
// one line per step, then "N passed, N failed" over all of them. Exits 1 if anything failed.
//
//   node tools/test-all.mjs [--only checks,deno,bun,node22,node24,node] [test/x.test.ts ...]
//
// Node 22 and 24 come from runtimes/ (`npm run runtimes`, run here when they are missing, also
// builds better-sqlite3 for them). The read-protocol simulation runs every profile and file-time
// granularity under the machine's Node and a declared sample elsewhere (SIM_SAMPLE=1; see
// test/PROMISES.md, "Skips").
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const bin = (name) => path.join(root, 'node_modules', '.bin', name);
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
/** A step that runs longer than this hangs (a leaked handle): it is killed and counted as failed. */
const STEP_LIMIT_MS = 90 * 60_000;

const args = process.argv.slice(2);
const onlyIndex = args.indexOf('--only');
const only = onlyIndex >= 0 ? new Set(args.splice(onlyIndex, 2)[1]?.split(',')) : undefined;
const wanted = (name) => only === undefined || only.has(name);
const files = args.length > 0 ? args : fs.readdirSync(path.join(root, 'test')).filter((name) => name.endsWith('.test.ts')).sort().map((name) => `test/${name}`);

// ---------------------------------------------------------------------------------------------
// Counting what each reporter printed
// ---------------------------------------------------------------------------------------------

const stripAnsi = (text) => text.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '');
const count = (text, pattern) => {
  let total;
  for (const match of text.matchAll(pattern)) total = (total ?? 0) + Number(match[1]);
  return total;
};

/** Node's test runner (TAP `# pass N` or spec `ℹ pass N`). */
function nodeCounts(text) {
  const get = (key) => count(text, new RegExp(`^(?:#|ℹ) ${key} (\\d+)$`, 'gm'));
  const passed = get('pass');
  if (passed === undefined) return undefined;
  return { passed, failed: (get('fail') ?? 0) + (get('cancelled') ?? 0), skipped: (get('skipped') ?? 0) + (get('todo') ?? 0) };
}

/** `deno test`: `ok | 147 passed (173 steps) | 0 failed | 4 ignored (…)`. */
function denoCounts(text) {
  const line = [...text.matchAll(/^(?:ok|FAILED) \| .*$/gm)].at(-1)?.[0];
  if (line === undefined) return undefined;
  const field = (key) => Number(line.match(new RegExp(`(\\d+) ${key}`))?.[1] ?? 0);
  return { passed: field('passed'), failed: field('failed'), skipped: field('ignored') };
}

/** `bun test`: ` 288 pass`, ` 2 skip`, ` 0 fail` lines at the end. */
function bunCounts(text) {
  const get = (key) => [...text.matchAll(new RegExp(`^\\s*(\\d+) ${key}$`, 'gm'))].at(-1)?.[1];
  const passed = get('pass');
  if (passed === undefined) return undefined;
  return { passed: Number(passed), failed: Number(get('fail') ?? 0), skipped: Number(get('skip') ?? 0) + Number(get('todo') ?? 0) };
}

// ---------------------------------------------------------------------------------------------
// Running steps
// ---------------------------------------------------------------------------------------------

/** The process group of the step running now: a signal to this script ends it too. */
let current;
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    if (current !== undefined) {
      try {
        process.kill(-current, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    process.exit(130);
  });
}

/** Runs a command, passing its output through; resolves with its status and output (never rejects). */
function run(command, commandArgs, env = {}) {
  return new Promise((resolve) => {
    const started = performance.now();
    console.log(`\n$ ${[command, ...commandArgs].map((part) => path.relative(root, part) || part).join(' ')}`);
    const child = spawn(command, commandArgs, { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    current = child.pid;
    let output = '';
    const collect = (stream) => (chunk) => {
      output += chunk;
      stream.write(chunk);
    };
    child.stdout.on('data', collect(process.stdout));
    child.stderr.on('data', collect(process.stderr));
    let hung = false;
    const watchdog = setTimeout(() => {
      hung = true;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }, STEP_LIMIT_MS);
    child.on('error', (error) => {
      output += `\n${error.message}\n`;
    });
    child.on('close', (status) => {
      clearTimeout(watchdog);
      current = undefined;
      const seconds = Math.round((performance.now() - started) / 1000);
      resolve({ status: hung ? null : status, output: stripAnsi(output) + (hung ? `\nkilled after ${STEP_LIMIT_MS / 60_000} min\n` : ''), seconds });
    });
  });
}

const results = [];

/** A check counts as one test: passed when the command exits 0. */
async function check(name, command, commandArgs) {
  if (!wanted('checks')) return;
  const { status, seconds } = await run(command, commandArgs);
  results.push({ name, passed: status === 0 ? 1 : 0, failed: status === 0 ? 0 : 1, skipped: 0, seconds, note: status === 0 ? '' : `exit status ${status}` });
}

/** A runtime's test run: counts from its reporter; a non-zero exit without failures counts one failure. */
async function suite(name, key, command, commandArgs, counts, env = {}) {
  if (!wanted(key)) return;
  if (!fs.existsSync(command)) {
    console.log(`\n${name}: ${path.relative(root, command)} is missing`);
    results.push({ name, passed: 0, failed: 1, skipped: 0, seconds: 0, note: `${path.relative(root, command)} is missing (npm run runtimes)` });
    return;
  }
  const version = spawnSync(command, ['--version'], { encoding: 'utf8' }).stdout.match(/\d+\.\d+\.\d+/)?.[0] ?? '?';
  const { status, output, seconds } = await run(command, commandArgs, env);
  const found = counts(output);
  const result = { name: `${name} ${version}`, passed: found?.passed ?? 0, failed: found?.failed ?? 0, skipped: found?.skipped ?? 0, seconds, note: '' };
  if (found === undefined) result.note = 'no summary from the test runner';
  if (status !== 0 && result.failed === 0) {
    result.failed = 1;
    result.note ||= `exit status ${status}`;
  }
  results.push(result);
}

const started = performance.now();

await check('build', npm, ['run', '--silent', 'build']);
await check('typecheck', bin('tsc'), ['-p', '.', '--noEmit']);
await check('publint', bin('publint'), []);
await check('arethetypeswrong', process.execPath, ['tools/attw-packed.mjs', '--no-build']);

const runtimeNode = (version) => path.join(root, 'runtimes', 'node_modules', `node${version}`, 'bin', 'node');
if (wanted('node22') || wanted('node24')) {
  // What `npm run runtimes` installs, installed when missing; the addon builds skip what exists.
  if (!fs.existsSync(runtimeNode(22)) || !fs.existsSync(runtimeNode(24))) await run(npm, ['ci', '--prefix', 'runtimes', '--no-audit', '--no-fund']);
  await run(process.execPath, ['tools/build-better-sqlite3.mjs']);
}

// Every runtime but the machine's Node runs a sample of the read-protocol simulation (SIM_SAMPLE).
const sample = { SIM_SAMPLE: '1' };
await suite('deno', 'deno', bin('deno'), ['test', '--no-check', '-A', '--v8-flags=--expose-gc', ...files], denoCounts, { ...sample, NO_COLOR: '1' });
await suite('bun', 'bun', bin('bun'), ['test', '--timeout=600000', ...files.map((file) => `./${file}`)], bunCounts, sample);
await suite('node', 'node22', runtimeNode(22), ['--test', '--test-timeout=1800000', ...files], nodeCounts, sample);
await suite('node', 'node24', runtimeNode(24), ['--test', '--test-timeout=1800000', ...files], nodeCounts, sample);
await suite('node', 'node', process.execPath, ['--import', 'tsx', '--test', '--test-timeout=1800000', ...files], nodeCounts);

const total = { passed: 0, failed: 0, skipped: 0 };
console.log(`\nSummary (${Math.round((performance.now() - started) / 1000)} s):`);
for (const result of results) {
  total.passed += result.passed;
  total.failed += result.failed;
  total.skipped += result.skipped;
  const counts = `${result.passed} passed, ${result.failed} failed, ${result.skipped} skipped`;
  console.log(`  ${result.failed > 0 ? 'FAIL' : 'ok  '} ${result.name.padEnd(18)} ${counts.padEnd(36)} ${String(result.seconds).padStart(5)} s${result.note ? `  ${result.note}` : ''}`);
}
if (results.length === 0) {
  console.log('  nothing ran');
  total.failed = 1;
}
console.log(`${total.passed} passed, ${total.failed} failed`);
process.exitCode = total.failed > 0 ? 1 : 0;
