/**
 * The watch loop's scheduler on a manual clock (src/refresh-scheduler.ts): debounce, the settle
 * re-checks, retry backoff, and the verifying reloads asked for by the cache when its files
 * changed inside the racy window of coarse file clocks.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { RefreshScheduler, type RefreshTiming } from '../src/refresh-scheduler.ts';
import { ManualClock } from './support/manual-clock.ts';

const TIMING: RefreshTiming = { debounceMs: 10, maxWaitMs: 100, settleMs: 150, pollMs: 4, retryMs: 50, maxRetryMs: 2000 };

test('verifyAt: one reload when the racy window has passed, none before, even with no file event', async () => {
  const clock = new ManualClock();
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
  assert.equal(clock.pending().length, 0, 'nothing more is scheduled once verified');
  assert.equal(checks, 0);
  scheduler.stop();
});

test('verifyAt: asked for during the settle re-checks after an event, it runs after them', async () => {
  const clock = new ManualClock();
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
  const clock = new ManualClock();
  let reloads = 0;
  const scheduler = new RefreshScheduler(TIMING, clock, { changed: () => false, reload: async () => (reloads++, true) });
  scheduler.stop();
  scheduler.verifyAt(10);
  await clock.advance(100);
  assert.equal(reloads, 0);
  assert.equal(clock.pending().length, 0);
});

const DEFAULT_TIMING: RefreshTiming = { debounceMs: 5, maxWaitMs: 25, settleMs: 150, pollMs: 4, retryMs: 50, maxRetryMs: 2000 };

/** A scheduler on a manual clock whose target records when it reloads and answers as told. */
function scheduler(timing: RefreshTiming = DEFAULT_TIMING) {
  const clock = new ManualClock();
  const reloads: number[] = [];
  const checks: number[] = [];
  const target = { ok: true, changed: false };
  const scheduler = new RefreshScheduler(timing, clock, {
    changed: () => {
      checks.push(clock.now());
      return target.changed;
    },
    reload: () => {
      reloads.push(clock.now());
      return Promise.resolve(target.ok);
    },
  });
  return { clock, reloads, checks, target, scheduler };
}

/** Lets the reload promises a scheduler awaits settle. */
const settle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 0));

describe('debounce, re-checks and backoff, with the default timing', () => {
  test('one event reloads debounceMs later', () => {
    const { clock, reloads, scheduler: s } = scheduler();
    s.notify();
    clock.advanceTo(4);
    assert.deepEqual(reloads, []);
    clock.advanceTo(5);
    assert.deepEqual(reloads, [5]);
  });

  test('events within debounceMs of the first one share its reload', () => {
    const { clock, reloads, scheduler: s } = scheduler();
    for (const t of [0, 1, 3, 4]) {
      clock.advanceTo(t);
      s.notify();
    }
    clock.advanceTo(100);
    assert.deepEqual(reloads, [5]);
  });

  test('events during a reload make one more, debounceMs after the last of them but at most maxWaitMs after the first', async () => {
    for (const [lastEvent, finished, expected] of [
      [10, 12, 15],
      [40, 41, 41],
    ] as const) {
      const clock = new ManualClock();
      const reloads: number[] = [];
      let finish!: (ok: boolean) => void;
      const s = new RefreshScheduler(DEFAULT_TIMING, clock, {
        changed: () => false,
        reload: () => {
          reloads.push(clock.now());
          return new Promise<boolean>((resolve) => (finish = resolve));
        },
      });
      s.notify();
      clock.advanceTo(5);
      for (let t = 6; t <= lastEvent; t += 2) {
        clock.advanceTo(t);
        s.notify();
      }
      clock.advanceTo(finished);
      finish(true);
      await settle();
      clock.advanceTo(clock.nextAt()!);
      assert.deepEqual(reloads, [5, expected], `events 6..${lastEvent}, first reload done at ${finished}`);
      s.stop();
    }
  });

  test('after a reload, the cheap version is re-checked every pollMs until settleMs after the last event', async () => {
    const { clock, reloads, checks, scheduler: s } = scheduler();
    s.notify();
    clock.advanceTo(5);
    await settle();
    clock.advanceTo(1000);
    assert.deepEqual(reloads, [5]);
    assert.equal(checks.length, Math.ceil((150 - 5) / 4));
    assert.ok(checks.every((at, i) => at === 5 + 4 * (i + 1)));
  });

  test('a re-check that sees a change reloads', async () => {
    const { clock, reloads, target, scheduler: s } = scheduler();
    s.notify();
    clock.advanceTo(5);
    await settle();
    target.changed = true;
    clock.advanceTo(9);
    assert.deepEqual(reloads, [5, 9]);
  });

  test('failed reloads are retried with doubling delays up to maxRetryMs; an event during the backoff retries after retryMs', async () => {
    const { clock, reloads, target, scheduler: s } = scheduler();
    target.ok = false;
    s.notify();
    for (let step = 0; step < 9; step++) {
      clock.advanceTo(clock.nextAt()!);
      await settle();
    }
    const gaps = reloads.slice(1).map((at, i) => at - reloads[i]!);
    assert.deepEqual(gaps, [50, 100, 200, 400, 800, 1600, 2000, 2000]);
    const last = reloads.at(-1)!;
    clock.advanceTo(last + 10);
    s.notify();
    clock.advanceTo(clock.nextAt()!);
    assert.equal(reloads.at(-1), last + 10 + 50);
  });

  test('stop() cancels what is pending and ignores later events', () => {
    const { clock, reloads, scheduler: s } = scheduler();
    s.notify();
    s.stop();
    s.notify();
    clock.advanceTo(1000);
    assert.deepEqual(reloads, []);
  });
});
