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
const code = await runCli(
  process.argv.slice(2),
  { out: (line) => console.log(line), err: (line) => console.error(line) },
  controller.signal,
);
process.exitCode = code;
