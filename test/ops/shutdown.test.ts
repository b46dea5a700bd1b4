import { describe, expect, it } from 'vitest';
import { createShutdownCoordinator, ShuttingDownError, type Timers } from '../../server/ops/shutdown';

/** Timers the test fires by hand: the grace period passes when the test says so. */
function manualTimers() {
  const pending = new Set<{ callback: () => void; ms: number }>();
  const timers: Timers = {
    setTimeout(callback, ms) {
      const timer = { callback, ms };
      pending.add(timer);
      return timer;
    },
    clearTimeout(handle) {
      pending.delete(handle as { callback: () => void; ms: number });
    },
  };
  return {
    timers,
    pendingMs: () => [...pending].map((t) => t.ms),
    /** Fire the pending timer of `ms`, once the coordinator has set it (a few ticks at most). */
    async fire(ms: number) {
      // Let the coordinator settle first, so a timer about to be cleared is not the one fired.
      for (let tick = 0; tick < 5; tick++) await new Promise((resolve) => setImmediate(resolve));
      for (let tick = 0; tick < 100; tick++) {
        const timer = [...pending].find((t) => t.ms === ms);
        if (timer) {
          pending.delete(timer);
          timer.callback();
          return;
        }
        await new Promise((resolve) => setImmediate(resolve));
      }
      throw new Error(`no ${ms} ms timer was set`);
    },
  };
}

/** A stream like the gateway's: on abort it writes its error event and unregisters (unless stubborn). */
function fakeStream(coordinator: ReturnType<typeof createShutdownCoordinator>, options: { stubborn?: boolean } = {}) {
  const stream = { reasons: [] as unknown[], end: () => {} };
  const untrack = coordinator.track({
    abort(reason) {
      stream.reasons.push(reason);
      if (!options.stubborn) untrack();
    },
  });
  stream.end = untrack;
  return stream;
}

const ticks = async (n = 5) => {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
};

describe('shutdown coordinator', () => {
  it('stops accepting, lets streams that finish in the grace period finish, then runs the closers in order', async () => {
    const clock = manualTimers();
    const counts: number[] = [];
    const coordinator = createShutdownCoordinator({ timers: clock.timers, onOpenStreams: (n) => counts.push(n) });
    const a = fakeStream(coordinator);
    const b = fakeStream(coordinator);
    const events: string[] = [];

    const done = coordinator.shutdown({
      graceMs: 10_000,
      stopAccepting: () => void events.push('stop accepting'),
      closers: [
        { name: 'usage flush', close: async () => void events.push('usage flush') },
        { name: 'redis', close: () => void events.push('redis') },
      ],
    });
    expect(coordinator.shutdown({ graceMs: 1 })).toBe(done);
    expect(coordinator.isShuttingDown()).toBe(true);
    await ticks();
    expect(events).toEqual(['stop accepting']);

    // A request arriving now is refused at once.
    const late = fakeStream(coordinator);
    await ticks(1);
    expect(late.reasons).toHaveLength(1);
    expect(ShuttingDownError.isInstance(late.reasons[0])).toBe(true);

    a.end();
    await ticks();
    expect(events).toEqual(['stop accepting']); // b still open
    b.end();
    b.end(); // a second end is harmless
    expect(await done).toEqual({ finished: 2, aborted: 0, closers: [{ name: 'usage flush', ok: true }, { name: 'redis', ok: true }] });
    expect(events).toEqual(['stop accepting', 'usage flush', 'redis']);
    expect(a.reasons).toEqual([]);
    expect(b.reasons).toEqual([]);
    expect(counts).toEqual([1, 2, 1, 0]);
    expect(clock.pendingMs()).toEqual([]); // every timer it set was cleared
  });

  it('ends the streams still open after the grace period with shutting_down', async () => {
    const clock = manualTimers();
    const coordinator = createShutdownCoordinator({ timers: clock.timers });
    const quick = fakeStream(coordinator);
    const slow = fakeStream(coordinator);
    const closed: string[] = [];
    const done = coordinator.shutdown({ graceMs: 5_000, closers: [{ name: 'redis', close: () => void closed.push('redis') }] });
    quick.end();
    await ticks();
    expect(slow.reasons).toEqual([]);
    expect(closed).toEqual([]);

    await clock.fire(5_000);
    const report = await done;
    expect(slow.reasons).toHaveLength(1);
    expect(slow.reasons[0]).toBeInstanceOf(ShuttingDownError);
    expect((slow.reasons[0] as ShuttingDownError).code).toBe('shutting_down');
    expect(report).toEqual({ finished: 1, aborted: 1, closers: [{ name: 'redis', ok: true }] });
    expect(coordinator.openStreams()).toBe(0);
  });

  it('finishes even when a stream ignores the abort and closers fail or hang', async () => {
    const clock = manualTimers();
    const coordinator = createShutdownCoordinator({ timers: clock.timers });
    const stubborn = fakeStream(coordinator, { stubborn: true });
    const done = coordinator.shutdown({
      graceMs: 100,
      abortWaitMs: 200,
      closerTimeoutMs: 300,
      stopAccepting: () => Promise.resolve(),
      closers: [
        { name: 'failing', close: () => Promise.reject(new Error('boom')) },
        { name: 'hanging', close: () => new Promise(() => {}) },
        { name: 'redis', close: () => Promise.resolve() },
      ],
    });
    await clock.fire(100);
    expect(stubborn.reasons).toHaveLength(1);
    await clock.fire(200);
    await clock.fire(300); // the hanging closer's bound
    expect(await done).toEqual({
      finished: 0,
      aborted: 1,
      closers: [
        { name: 'failing', ok: false },
        { name: 'hanging', ok: false },
        { name: 'redis', ok: true },
      ],
    });
    expect(coordinator.openStreams()).toBe(0);
  });

  it('with no open streams, closes at once', async () => {
    const clock = manualTimers();
    const coordinator = createShutdownCoordinator({ timers: clock.timers });
    expect(await coordinator.shutdown({ graceMs: 60_000 })).toEqual({ finished: 0, aborted: 0, closers: [] });
  });

  it('an AbortController is a stream handle: its signal carries the shutting_down reason', async () => {
    const clock = manualTimers();
    const coordinator = createShutdownCoordinator({ timers: clock.timers });
    const controller = new AbortController();
    const untrack = coordinator.track(controller);
    controller.signal.addEventListener('abort', untrack);
    const done = coordinator.shutdown({ graceMs: 1_000 });
    await clock.fire(1_000);
    await done;
    expect(controller.signal.aborted).toBe(true);
    expect(ShuttingDownError.isInstance(controller.signal.reason)).toBe(true);
  });
});
