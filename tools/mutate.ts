/**
 * Mutation check of the image reader: disables one guard at a time and runs the deterministic
 * tests against each mutant; a guard whose removal no test notices is reported as a survivor.
 *
 *   npm run mutate                       # every guard in src/image/*.ts, 2 mutants at a time
 *   npm run mutate -- --list             # only list the mutants
 *   npm run mutate -- --only 3,7         # run mutants 3 and 7
 *   npm run mutate -- --jobs 1 --test test/read-protocol.test.ts
 *   npm run mutate -- --together 5,7       # one mutant with guards 5 and 7 both disabled
 *
 * A guard is a statement that ends an attempt early: `return new Retry(…)` (the writer moved:
 * read again) and `throw new PipelineFailure(…)` (the bytes are bad). Each mutant replaces one of
 * them with a no-op, in a copy of the repository (the working tree is never touched), and runs the
 * test files under Node. Exit code 1 when a mutant survives.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';

interface Mutant {
  readonly id: number;
  readonly file: string;
  readonly line: number;
  /** Offset of the guard statement in the file. */
  readonly start: number;
  readonly original: string;
  readonly mutated: string;
  readonly label: string;
}

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DEFAULT_TESTS = ['test/read-protocol.test.ts', 'test/image-parsing.test.ts'];
/** `return new Retry('why')` and `throw new PipelineFailure(...)` on one line; the call may span lines. */
const GUARD = /\b(return new Retry\(|throw new PipelineFailure\()/;

function argument(name: string): string | undefined {
  const index = process.argv.indexOf(name);
  return index === -1 ? undefined : process.argv[index + 1];
}

/** The end of the call that starts at `start` (the index of its opening parenthesis), by bracket depth. */
function callEnd(text: string, start: number): number {
  let depth = 0;
  for (let i = start; i < text.length; i++) {
    const c = text[i];
    if (c === "'" || c === '"' || c === '`') {
      const quote = c;
      for (i++; i < text.length && text[i] !== quote; i++) if (text[i] === '\\') i++;
    } else if (c === '(') {
      depth++;
    } else if (c === ')' && --depth === 0) {
      return i + 1;
    }
  }
  throw new Error(`unbalanced call at ${start}`);
}

/**
 * One mutant with all of `parts` disabled (they must be in one file): for guards that each cover
 * the other, so that either alone survives and the pair must not.
 */
function combine(parts: readonly Mutant[]): Mutant {
  const file = parts[0]!.file;
  if (parts.some((part) => part.file !== file)) throw new Error('--together needs mutants of one file');
  let text = fs.readFileSync(path.join(ROOT, file), 'utf8');
  // From the end of the file backwards, so that earlier offsets stay valid.
  for (const part of [...parts].sort((a, b) => b.start - a.start)) {
    text = text.slice(0, part.start) + 'void 0;' + text.slice(part.start + part.original.length);
  }
  return {
    id: parts[0]!.id,
    file,
    line: parts[0]!.line,
    start: parts[0]!.start,
    original: parts.map((part) => part.original).join(' + '),
    mutated: text,
    label: `together: ${parts.map((part) => `#${part.id} (${part.label})`).join(' and ')}`,
  };
}

function findMutants(files: readonly string[]): Mutant[] {
  const mutants: Mutant[] = [];
  for (const file of files) {
    const text = fs.readFileSync(path.join(ROOT, file), 'utf8');
    const pattern = new RegExp(GUARD.source, 'g');
    for (let match = pattern.exec(text); match !== null; match = pattern.exec(text)) {
      const start = match.index;
      const end = callEnd(text, start + match[0].length - 1);
      const statementEnd = text[end] === ';' ? end + 1 : end;
      const original = text.slice(start, statementEnd);
      const line = text.slice(0, start).split('\n').length;
      const reason = /\(\s*'([^']*)'/.exec(original)?.[1] ?? /\(\s*'([A-Z_]+)'/.exec(original)?.[1] ?? original.slice(0, 60);
      mutants.push({
        id: mutants.length + 1,
        file,
        line,
        start,
        original,
        // A no-op in statement position, also as the body of an `if` without braces.
        mutated: text.slice(0, start) + 'void 0;' + text.slice(statementEnd),
        label: `${file}:${line} ${match[1]!.startsWith('return') ? 'retry' : 'fail'}: ${reason}`,
      });
    }
  }
  return mutants;
}

/** A copy of src/ and test/ beside links to everything else, with one file replaced. */
function workspace(mutant: Mutant): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `dbcache-mutant-${mutant.id}-`));
  for (const entry of fs.readdirSync(ROOT)) {
    if (entry === '.git') continue;
    const from = path.join(ROOT, entry);
    if (entry === 'src' || entry === 'test') fs.cpSync(from, path.join(dir, entry), { recursive: true });
    else fs.symlinkSync(from, path.join(dir, entry));
  }
  fs.writeFileSync(path.join(dir, mutant.file), mutant.mutated);
  return dir;
}

function runTests(dir: string, tests: readonly string[], timeoutMs: number): Promise<{ killed: boolean; detail: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=tap', '--test-timeout=120000', ...tests], {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NODE_OPTIONS: '' },
    });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      const failing = /^\s*(?:not ok \d+ - |✖ )(.*)$/m.exec(output)?.[1]?.trim();
      if (signal !== null) resolve({ killed: true, detail: `timed out after ${timeoutMs} ms` });
      else resolve({ killed: code !== 0, detail: code === 0 ? '' : (failing ?? `exit ${code}`) });
    });
  });
}

async function main(): Promise<void> {
  const files = (argument('--files')?.split(',') ?? fs.readdirSync(path.join(ROOT, 'src/image')).filter((f) => f.endsWith('.ts')).map((f) => `src/image/${f}`)).sort();
  const tests = argument('--test')?.split(',') ?? DEFAULT_TESTS;
  const jobs = Number(argument('--jobs') ?? 2);
  const timeoutMs = Number(argument('--timeout') ?? 300_000);
  const only = argument('--only')?.split(',').map(Number);
  let mutants = findMutants(files);
  if (process.argv.includes('--list')) {
    for (const mutant of mutants) console.log(`${String(mutant.id).padStart(3)}  ${mutant.label}`);
    return;
  }
  if (only !== undefined) mutants = mutants.filter((mutant) => only.includes(mutant.id));
  const together = argument('--together')?.split(',').map(Number);
  if (together !== undefined) mutants = [combine(mutants.filter((mutant) => together.includes(mutant.id)))];
  console.log(`${mutants.length} mutants of ${files.join(', ')}; tests: ${tests.join(' ')}; ${jobs} at a time`);
  const survivors: Mutant[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < mutants.length) {
      const mutant = mutants[next++]!;
      const dir = workspace(mutant);
      try {
        const { killed, detail } = await runTests(dir, tests, timeoutMs);
        console.log(`${killed ? 'killed  ' : 'SURVIVED'} ${String(mutant.id).padStart(3)}  ${mutant.label}${killed ? `  <- ${detail}` : ''}`);
        if (!killed) survivors.push(mutant);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, jobs) }, worker));
  const killed = mutants.length - survivors.length;
  console.log(`mutation score: ${killed}/${mutants.length} killed (${mutants.length === 0 ? 100 : ((100 * killed) / mutants.length).toFixed(1)}%)`);
  if (survivors.length > 0) process.exitCode = 1;
}

await main();
