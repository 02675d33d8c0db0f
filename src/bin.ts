import process from 'node:process';
import { runCli } from './cli.ts';

// `dbcache query … | head` closes the pipe early: that is a normal end, not a crash.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(0);
  throw error;
});

const controller = new AbortController();
// Ctrl-C ends `watch` cleanly; these handlers belong to the command, never to the library.
process.once('SIGINT', () => controller.abort());
process.once('SIGTERM', () => controller.abort());
// Each call is a chunk of whole lines (about 64 KiB at most).
const code = await runCli(
  process.argv.slice(2),
  { out: (text) => console.log(text), err: (text) => console.error(text) },
  controller.signal,
);
process.exitCode = code;
