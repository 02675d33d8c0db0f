import type { Clock } from './timers.ts';

/** Timing of the watch loop, in milliseconds. */
export interface RefreshTiming {
  /** Quiet time after the last event before reloading. */
  readonly debounceMs: number;
  /** Longest delay between the first event of a burst and its reload. */
  readonly maxWaitMs: number;
  /** How long after the last event the cheap version keeps being re-checked. */
  readonly settleMs: number;
  /** Interval of those re-checks. */
  readonly pollMs: number;
  /** First retry delay after a failed reload; doubles up to `maxRetryMs`. */
  readonly retryMs: number;
  readonly maxRetryMs: number;
}

/** What the scheduler drives. */
export interface RefreshTarget {
  /** Whether the cheap version differs from the live snapshot's (true when it cannot tell). */
  changed(): boolean;
  /** Reloads; resolves `true` on success, `false` on failure (never rejects). */
  reload(): Promise<boolean>;
}

/**
 * Turns file events into reloads: debounced with a maximum wait, then re-checking the cheap
 * version for a while after the last event, because event sources drop repeats (chokidar
 * suppresses the same event on the same path for tens of milliseconds). Failed reloads are
 * retried with exponential backoff until one succeeds.
 */
export class RefreshScheduler {
  #timing: RefreshTiming;
  #clock: Clock;
  #target: RefreshTarget;
  #timer: unknown;
  #due = Infinity;
  #firstEvent: number | undefined;
  #lastEvent = -Infinity;
  #failures = 0;
  #reloading = false;
  #stopped = false;

  constructor(timing: RefreshTiming, clock: Clock, target: RefreshTarget) {
    this.#timing = timing;
    this.#clock = clock;
    this.#target = target;
  }

  /** A file event happened. */
  notify(): void {
    if (this.#stopped) return;
    const now = this.#clock.now();
    this.#lastEvent = now;
    this.#firstEvent ??= now;
    if (this.#failures > 0) {
      // A broken file that keeps changing is retried at most every `retryMs`, not per event.
      this.#schedule(now + this.#timing.retryMs, 'reload');
      return;
    }
    this.#schedule(Math.min(now + this.#timing.debounceMs, this.#firstEvent + this.#timing.maxWaitMs), 'reload');
  }

  stop(): void {
    this.#stopped = true;
    this.#cancel();
  }

  #schedule(at: number, action: 'reload' | 'check'): void {
    if (this.#stopped || this.#reloading) return;
    if (this.#timer !== undefined && this.#due <= at) return;
    this.#cancel();
    this.#due = at;
    this.#timer = this.#clock.setTimeout(() => this.#fire(action), Math.max(0, at - this.#clock.now()));
  }

  #cancel(): void {
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#due = Infinity;
  }

  #fire(action: 'reload' | 'check'): void {
    this.#timer = undefined;
    this.#due = Infinity;
    if (this.#stopped) return;
    if (action === 'check' && !this.#changed()) {
      this.#afterReload();
      return;
    }
    this.#firstEvent = undefined;
    this.#reloading = true;
    void this.#target.reload().then((ok) => {
      this.#reloading = false;
      this.#failures = ok ? 0 : this.#failures + 1;
      this.#afterReload();
    });
  }

  /** After a reload or a quiet check: retry a failure, keep checking inside the window, or rest. */
  #afterReload(): void {
    const now = this.#clock.now();
    if (this.#failures > 0) {
      const delay = Math.min(this.#timing.retryMs * 2 ** (this.#failures - 1), this.#timing.maxRetryMs);
      this.#schedule(now + delay, 'reload');
    } else if (this.#firstEvent !== undefined) {
      // Events arrived while reloading: honour their debounce.
      this.#schedule(Math.min(this.#lastEvent + this.#timing.debounceMs, this.#firstEvent + this.#timing.maxWaitMs), 'reload');
    } else if (now - this.#lastEvent < this.#timing.settleMs) {
      this.#schedule(now + this.#timing.pollMs, 'check');
    }
  }

  #changed(): boolean {
    try {
      return this.#target.changed();
    } catch {
      return true;
    }
  }
}
