/** The clock and timers the watch scheduler uses; injectable so tests control time. */
export interface Clock {
  now(): number;
  /** Starts a timer that must not keep the process alive. */
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

declare const Deno: { unrefTimer?(id: number): void } | undefined;

/** Real time; timers are unref'd in Node and Bun, and through `Deno.unrefTimer` in Deno. */
export const systemClock: Clock = {
  now: () => performance.now(),
  setTimeout(fn, ms) {
    const handle: unknown = setTimeout(fn, ms);
    if (typeof handle === 'object' && handle !== null && 'unref' in handle && typeof handle.unref === 'function') {
      handle.unref();
    } else if (typeof handle === 'number' && typeof Deno !== 'undefined') {
      Deno.unrefTimer?.(handle);
    }
    return handle;
  },
  clearTimeout: (handle) => clearTimeout(handle as Parameters<typeof clearTimeout>[0]),
};

/** Timers that keep the process alive, for what runs with `persistent: true` (as the clock's do not). */
export const persistentTimers: Pick<Clock, 'setTimeout' | 'clearTimeout'> = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as Parameters<typeof clearTimeout>[0]),
};

/** A promise that resolves after `ms` (keeps the process alive meanwhile, unlike the clock's timers). */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
