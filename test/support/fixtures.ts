import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** A fresh temporary directory, removed by the returned `cleanup`. */
export function tempDir(): { dir: string; cleanup: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dbcache-'));
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** Runs Python code with `sqlite3` imported and `db` bound to `dbPath` (a real SQLite writer in another process). */
export function sqlite(dbPath: string, code: string): string {
  const program = `import sqlite3, sys\ndb = sqlite3.connect(sys.argv[1], isolation_level=None)\n${code}\ndb.close()\n`;
  return execFileSync('python3', ['-c', program, dbPath], { encoding: 'utf8' });
}

/** Polls `condition` until it holds or `timeoutMs` passes (then throws with `what`). */
export async function waitFor(condition: () => boolean, what: string | (() => string), timeoutMs = 5000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) {
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${typeof what === 'string' ? what : what()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/** Runs a Python SQLite writer in another process without blocking the event loop; resolves on exit. */
export function sqliteAsync(dbPath: string, code: string): Promise<void> {
  const program = `import sqlite3, sys, time\ndb = sqlite3.connect(sys.argv[1], isolation_level=None)\n${code}\ndb.close()\n`;
  return new Promise((resolve, reject) => {
    const child = spawn('python3', ['-c', program, dbPath], { stdio: ['ignore', 'ignore', 'inherit'] });
    child.on('error', reject);
    child.on('exit', (status) => (status === 0 ? resolve() : reject(new Error(`python writer exited with ${status}`))));
  });
}

declare const Deno: { execPath(): string } | undefined;
declare const Bun: unknown;

/** The command that runs a TypeScript file in the runtime running the tests. */
export function runtimeCommand(script: string, denoFlags: readonly string[] = ['-A']): [string, string[]] {
  if (typeof Deno !== 'undefined') return [Deno.execPath(), ['run', ...denoFlags, script]];
  if (typeof Bun !== 'undefined') return [process.execPath, [script]];
  return [process.execPath, ['--import', 'tsx', script]];
}

/** A logger that records what was logged, by level. */
export function recordingLogger() {
  const lines = { debug: [] as string[], info: [] as string[], warn: [] as string[], error: [] as string[] };
  const log = (level: keyof typeof lines) => (...args: unknown[]) => void lines[level].push(args.map(String).join(' '));
  return { lines, logger: { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') } };
}

/** A Python process stopped at a point of its program: see {@link pausedPython}. */
export interface PausedPython {
  /** Closes its stdin, so that the program goes on past `sys.stdin.read()`; resolves once it has exited. */
  resume(): Promise<void>;
  /** Ends it with SIGKILL, as a crash would (nothing is closed or checkpointed); resolves once it has exited. */
  kill(): Promise<void>;
}

/**
 * Runs the Python `program` (`sys.argv[1]` is `dbPath`) until it prints a line `ready`; rejects
 * if it exits before that, so a failing program fails the test instead of hanging it.
 */
export async function pausedPython(program: string, dbPath: string): Promise<PausedPython> {
  const child = spawn('python3', ['-c', program, dbPath], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (status) => resolve(status)));
  // Closing stdin after the process is gone must not become an uncaught EPIPE.
  child.stdin.on('error', () => undefined);
  let output = '';
  await new Promise<void>((resolve, reject) => {
    child.on('error', reject);
    child.stdout.on('data', (chunk: Buffer) => {
      output += String(chunk);
      if (/^ready$/m.test(output)) resolve();
    });
    void exited.then((status) => reject(new Error(`the Python process exited with status ${status} before it printed "ready"`)));
  });
  return {
    resume: async () => {
      child.stdin.end();
      await exited;
    },
    kill: async () => {
      child.kill('SIGKILL');
      await exited;
    },
  };
}

/**
 * Keeps a reading connection to `dbPath` open in another process until the returned function is
 * called: a WAL database then keeps its `-wal` when writers close (only the last connection to
 * close checkpoints and deletes it).
 */
export async function holdOpen(dbPath: string): Promise<() => Promise<void>> {
  const program = "import sqlite3, sys\ndb = sqlite3.connect(sys.argv[1])\ndb.execute('SELECT count(*) FROM sqlite_schema').fetchall()\nprint('ready', flush=True)\nsys.stdin.read()\ndb.close()\n";
  return (await pausedPython(program, dbPath)).resume;
}

/**
 * The inotify watches this process holds (Linux: counted from /proc/self/fdinfo), or `undefined`
 * where that cannot be read. Node keeps its one inotify descriptor open for good, so descriptors
 * prove nothing; the watches on them do.
 */
export function inotifyWatches(): number | undefined {
  let fds: string[];
  try {
    fds = fs.readdirSync('/proc/self/fd');
  } catch {
    return undefined;
  }
  let watches = 0;
  for (const fd of fds) {
    let target: string;
    try {
      target = fs.readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      continue;
    }
    if (!target.includes('inotify')) continue;
    try {
      watches += fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8').split('\n').filter((line) => line.startsWith('inotify wd:')).length;
    } catch {
      // closed meanwhile
    }
  }
  return watches;
}
