/**
 * Where the command line writes: an {@link Output} over a stream, with backpressure, that tells a
 * reader who went away (a closed pipe) from a real write error.
 */
import { setImmediate } from 'node:timers';

/**
 * Where the CLI writes; injectable for tests. Each call is one or more whole lines, without the
 * final newline. `out` may return a promise: the CLI then waits for it before reading more rows
 * (backpressure). When the reader has gone away, `out` throws (or its promise rejects with)
 * {@link OutputClosed}, and the CLI stops.
 */
export interface Output {
  out(text: string): void | Promise<void>;
  err(text: string): void;
}

/** Thrown by an {@link Output} whose reader is gone; `quiet` when that is a normal end (a closed pipe). */
export class OutputClosed extends Error {
  readonly quiet: boolean;

  constructor(cause: unknown) {
    const code = typeof cause === 'object' && cause !== null && 'code' in cause ? String(cause.code) : '';
    super(`cannot write the output: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = 'OutputClosed';
    this.quiet = cause === CLOSED || QUIET_CODES.has(code) || /broken pipe/i.test(this.message);
  }
}

/** The reader went away: a pipe closed under the writer (EPIPE), or the stream was closed or destroyed. */
const QUIET_CODES = new Set(['EPIPE', 'ERR_STREAM_DESTROYED', 'ERR_STREAM_WRITE_AFTER_END']);
const CLOSED = new Error('the output was closed');

interface Writable {
  write(text: string): boolean;
  once(event: string, listener: (...args: unknown[]) => void): unknown;
  on(event: string, listener: (...args: unknown[]) => void): unknown;
  off(event: string, listener: (...args: unknown[]) => void): unknown;
}

/**
 * An {@link Output} over a writable stream: when `write` says the stream is full, `out` returns a
 * promise for its 'drain'; once the stream fails or closes (EPIPE: the reader went away), every
 * pending and later `out` fails with {@link OutputClosed}.
 */
export function streamOutput(stream: Writable): { out: (text: string) => void | Promise<void>; dispose: () => void } {
  let failure: unknown;
  const waiting = new Set<() => void>();
  const fail = (error: unknown): void => {
    failure ??= error;
    for (const wake of waiting) wake();
  };
  const onError = (error: unknown): void => fail(error);
  const onClose = (): void => fail(CLOSED);
  stream.on('error', onError);
  stream.on('close', onClose);
  const out = (text: string): void | Promise<void> => {
    if (failure !== undefined) throw new OutputClosed(failure);
    let ready: boolean;
    try {
      ready = stream.write(`${text}\n`);
    } catch (error) {
      // Some runtimes throw EPIPE from write itself instead of emitting 'error'.
      fail(error);
      throw new OutputClosed(error);
    }
    if (ready) return;
    return new Promise<void>((resolve, reject) => {
      const wake = (): void => {
        waiting.delete(wake);
        stream.off('drain', wake);
        if (failure === undefined) resolve();
        else reject(new OutputClosed(failure));
      };
      waiting.add(wake);
      stream.once('drain', wake);
    });
  };
  return {
    out,
    dispose: () => {
      // Keeps listening for 'error': a late EPIPE from data still being flushed must not crash the process.
      stream.off('close', onClose);
    },
  };
}

/** Writes `text` and a newline to `stream`, ignoring a stream that is gone (stderr, where nothing is left to tell). */
export function writeQuietly(stream: Writable, text: string): void {
  try {
    stream.write(`${text}\n`);
  } catch {
    // stderr is gone too: nothing left to tell.
  }
}

const CHUNK_BYTES = 64 * 1024;

/** Collects lines and hands them to the output in chunks: one write per row would dominate large results. */
export class ChunkedOutput {
  #output: Output;
  #lines: string[] = [];
  #bytes = 0;

  constructor(output: Output) {
    this.#output = output;
  }

  /** Adds a line; returns a promise only when a chunk went out and the output asked to wait. */
  line(text: string): void | Promise<void> {
    this.#lines.push(text);
    this.#bytes += text.length + 1;
    return this.#bytes >= CHUNK_BYTES ? this.flush() : undefined;
  }

  flush(): void | Promise<void> {
    if (this.#lines.length === 0) return undefined;
    const text = this.#lines.join('\n');
    this.#lines = [];
    this.#bytes = 0;
    // An output that never waits (a file, /dev/null) would otherwise keep the event loop from
    // ever seeing Ctrl-C: give it a turn after every chunk.
    return this.#output.out(text) ?? new Promise<void>((resolve) => setImmediate(resolve));
  }
}
