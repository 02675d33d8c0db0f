import * as http from 'node:http';
import * as https from 'node:https';
import { persistentTimers, type Clock } from '../timers.ts';

/** The HTTP client both calls use: `node:http` (or `node:https`), whose sockets can be unref'd in Node, Deno and Bun. */
function client(url: URL): typeof http {
  return (url.protocol === 'https:' ? https : http) as typeof http;
}

/** What {@link followEvents} reports. */
export interface EventStreamHandlers {
  /** A `tx` event for the database (it is applied and `-pos` says so), or a (re)connection. */
  readonly onChange: () => void;
  /** The stream failed or ended; `attempt` counts failures since the last good connection. */
  readonly onError: (error: Error, attempt: number) => void;
  /** The stream is connected again after `failures` failed attempts. */
  readonly onReconnect: (failures: number) => void;
}

/** Reconnect delays: 100 ms doubling to 5 s. */
const FIRST_DELAY_MS = 100;
const MAX_DELAY_MS = 5000;
/** A line longer than this is no LiteFS event: it is skipped, not buffered. */
const MAX_LINE = 1 << 16;

/**
 * Follows LiteFS's `GET /events` stream (newline-delimited JSON: `{"type":"tx","db":"app.db",…}`
 * per applied transaction, `init` first on every connection) and calls `onChange` for each
 * transaction of `database` and on every (re)connection, since transactions may have been
 * applied while it was away. Reconnects with backoff. The socket and the timers never keep the
 * process alive unless `persistent`. Returns the function that stops it.
 */
export function followEvents(base: URL, database: string, clock: Clock, handlers: EventStreamHandlers, persistent = false): () => void {
  const url = new URL('events', base.href.endsWith('/') ? base : new URL(`${base.href}/`));
  const timers = persistent ? persistentTimers : clock;
  let stopped = false;
  let failures = 0;
  let request: http.ClientRequest | undefined;
  let timer: unknown;

  const retry = (error: Error): void => {
    if (stopped) return;
    request = undefined;
    failures++;
    handlers.onError(error, failures);
    const delay = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** Math.min(failures - 1, 16));
    timer = timers.setTimeout(connect, delay);
  };

  const connect = (): void => {
    timer = undefined;
    if (stopped) return;
    let failed = false;
    const fail = (error: Error): void => {
      if (failed) return;
      failed = true;
      retry(error);
    };
    const current = client(url).get(url, { headers: { accept: 'application/x-ndjson' } }, (response) => {
      if (response.statusCode !== 200) {
        response.resume();
        fail(new Error(`GET ${url.href} answered ${response.statusCode}`));
        return;
      }
      response.setEncoding('utf8');
      let buffered = '';
      let skipping = false;
      response.on('data', (chunk: string) => {
        if (stopped) return;
        buffered += chunk;
        for (let end = buffered.indexOf('\n'); end !== -1; end = buffered.indexOf('\n')) {
          const line = buffered.slice(0, end);
          buffered = buffered.slice(end + 1);
          if (skipping) skipping = false;
          else event(line);
        }
        if (buffered.length > MAX_LINE) {
          buffered = '';
          skipping = true;
        }
      });
      response.on('end', () => fail(new Error(`GET ${url.href}: the stream ended`)));
      response.on('error', fail);
    });
    current.on('socket', (socket) => {
      if (!persistent) socket.unref();
    });
    current.on('error', fail);
    request = current;
  };

  const event = (line: string): void => {
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      return;
    }
    const { type, db } = (parsed ?? {}) as { type?: unknown; db?: unknown };
    if (type === 'init') {
      if (failures > 0) handlers.onReconnect(failures);
      failures = 0;
      handlers.onChange();
    } else if (type === 'tx' && db === database) {
      handlers.onChange();
    }
  };

  connect();
  return () => {
    stopped = true;
    if (timer !== undefined) timers.clearTimeout(timer);
    request?.destroy();
    request = undefined;
  };
}

/**
 * `GET /export?name=<database>`: a consistent copy of the database, which LiteFS reads under its
 * own locks. Rejects on a status other than 200, a body larger than `maxBytes`, or after
 * `timeoutMs` without progress. Like a read's retry waits, the request keeps the process alive
 * while it runs (a caller awaiting `reload()` must see it end), never longer than `timeoutMs`
 * without progress.
 */
export function fetchExport(base: URL, database: string, timeoutMs: number, maxBytes = Number.MAX_SAFE_INTEGER): Promise<Uint8Array> {
  const url = new URL('export', base.href.endsWith('/') ? base : new URL(`${base.href}/`));
  url.searchParams.set('name', database);
  return new Promise((resolve, reject) => {
    const request = client(url).get(url, (response) => {
      if (response.statusCode !== 200) {
        response.resume();
        reject(new Error(`GET ${url.href} answered ${response.statusCode}`));
        return;
      }
      const chunks: Uint8Array[] = [];
      let size = 0;
      response.on('data', (chunk: Uint8Array) => {
        size += chunk.length;
        if (size > maxBytes) {
          request.destroy(new Error(`GET ${url.href} sent more than ${maxBytes} bytes`));
          return;
        }
        chunks.push(chunk);
      });
      response.on('end', () => {
        const bytes = new Uint8Array(size);
        let at = 0;
        for (const chunk of chunks) {
          bytes.set(chunk, at);
          at += chunk.length;
        }
        resolve(bytes);
      });
      response.on('error', reject);
    });
    request.setTimeout(Math.max(1, timeoutMs), () => request.destroy(new Error(`GET ${url.href} timed out after ${timeoutMs} ms`)));
    request.on('error', reject);
  });
}
