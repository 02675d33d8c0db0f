/**
 * The watch loop's scheduler on a fake clock: verifying reloads asked for by the cache when its
 * files changed inside the racy window of coarse file clocks (src/refresh-scheduler.ts).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RefreshScheduler, type RefreshTiming } from '../src/refresh-scheduler.ts';
import type { Clock } from '../src/timers.ts';

/** Timers that fire only when the test advances the clock. */
class FakeClock implements Clock {
  time = 0;
  #timers = new Map<number, { at: number; fn: () => void }>();
  #next = 1;

  now(): number {
    return this.time;
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.#next++;
    this.#timers.set(id, { at: this.time + ms, fn });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.#timers.delete(handle as number);
  }

  pending(): number {
    return this.#timers.size;
  }

  /** Moves time forward to `to`, firing due timers in order (and the microtasks they start). */
  async advance(to: number): Promise<void> {
    for (;;) {
      const due = [...this.#timers].filter(([, t]) => t.at <= to).sort((a, b) => a[1].at - b[1].at)[0];
      if (due === undefined) break;
      this.#timers.delete(due[0]);
      this.time = Math.max(this.time, due[1].at);
      due[1].fn();
      for (let i = 0; i < 10; i++) await Promise.resolve();
    }
    this.time = to;
  }
}

const TIMING: RefreshTiming = { debounceMs: 10, maxWaitMs: 100, settleMs: 150, pollMs: 4, retryMs: 50, maxRetryMs: 2000 };

test('verifyAt: one reload when the racy window has passed, none before, even with no file event', async () => {
  const clock = new FakeClock();
  let reloads = 0;
  let checks = 0;
  const scheduler = new RefreshScheduler(TIMING, clock, {
    changed: () => {
      checks++;
      return false;
    },
    reload: async () => {
      reloads++;
      return true;
    },
  });
  scheduler.verifyAt(2050);
  await clock.advance(2049);
  assert.equal(reloads, 0);
  await clock.advance(2051);
  assert.equal(reloads, 1);
  assert.equal(clock.pending(), 0, 'nothing more is scheduled once verified');
  assert.equal(checks, 0);
  scheduler.stop();
});

test('verifyAt: asked for during the settle re-checks after an event, it runs after them', async () => {
  const clock = new FakeClock();
  let reloads = 0;
  let checks = 0;
  const scheduler = new RefreshScheduler(TIMING, clock, {
    changed: () => {
      checks++;
      // Like the cache: equal stats inside the window are not a change, but call for a verification.
      scheduler.verifyAt(1000);
      return false;
    },
    reload: async () => {
      reloads++;
      return true;
    },
  });
  scheduler.notify();
  await clock.advance(10); // the debounced reload
  assert.equal(reloads, 1);
  await clock.advance(500); // the settle window's quick re-checks, which read nothing
  assert.ok(checks > 10, `${checks} quick re-checks`);
  assert.equal(reloads, 1, 'the quick re-checks do not reload');
  await clock.advance(1001);
  assert.equal(reloads, 2, 'one verifying reload once the window has passed');
  await clock.advance(5000);
  assert.equal(reloads, 2);
  scheduler.stop();
});

test('verifyAt: after stop() nothing runs', async () => {
  const clock = new FakeClock();
  let reloads = 0;
  const scheduler = new RefreshScheduler(TIMING, clock, { changed: () => false, reload: async () => (reloads++, true) });
  scheduler.stop();
  scheduler.verifyAt(10);
  await clock.advance(100);
  assert.equal(reloads, 0);
  assert.equal(clock.pending(), 0);
});
