import type { Clock } from '../../src/timers.ts';

/** A clock that moves only when told to; timers fire in order of their due time. */
export class ManualClock implements Clock {
  time = 0;
  #timers: Array<{ at: number; ms: number; fn: () => void; id: number }> = [];
  #ids = 0;

  now(): number {
    return this.time;
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.#ids;
    this.#timers.push({ at: this.time + ms, ms, fn, id });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.#timers = this.#timers.filter((timer) => timer.id !== handle);
  }

  /** When the earliest pending timer is due. */
  nextAt(): number | undefined {
    return this.#timers.length === 0 ? undefined : Math.min(...this.#timers.map((timer) => timer.at));
  }

  /** The delays of the timers now pending, as they were asked for. */
  pending(): number[] {
    return this.#timers.map((timer) => timer.ms);
  }

  /** Moves time forward to `to`, firing every timer due by then (and those they start). */
  advanceTo(to: number): void {
    for (;;) {
      this.#timers.sort((a, b) => a.at - b.at);
      const next = this.#timers[0];
      if (next === undefined || next.at > to) break;
      this.#timers.shift();
      this.time = next.at;
      next.fn();
    }
    this.time = to;
  }

  /** {@link advanceTo}, letting the promises each fired timer starts settle in between. */
  async advance(to: number): Promise<void> {
    for (;;) {
      const next = this.nextAt();
      if (next === undefined || next > to) break;
      this.advanceTo(next);
      for (let i = 0; i < 10; i++) await Promise.resolve();
    }
    this.time = to;
  }
}
