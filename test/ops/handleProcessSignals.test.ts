import { EventEmitter } from 'node:events';
import { expect, it } from 'vitest';
import { handleProcessSignals } from '../../server/ops/handleProcessSignals';

it('SIGHUP reloads; SIGTERM shuts down then exits 0; a second stop signal exits 1 at once', async () => {
  const target = new EventEmitter();
  const calls: string[] = [];
  let finishShutdown = () => {};
  const exited = new Promise<number>((resolve) => {
    const exits: number[] = [];
    handleProcessSignals({
      target,
      reload: async () => void calls.push('reload'),
      shutdown: () => {
        calls.push('shutdown');
        return new Promise<void>((resolve) => (finishShutdown = resolve));
      },
      exit: (code) => {
        exits.push(code);
        if (exits.length === 2) resolve(exits[0]! * 10 + exits[1]!);
      },
    });
  });
  target.emit('SIGHUP');
  target.emit('SIGHUP');
  target.emit('SIGTERM');
  expect(calls).toEqual(['reload', 'reload', 'shutdown']);
  target.emit('SIGINT'); // impatient operator
  finishShutdown();
  expect(await exited).toBe(10); // exit(1) for the second signal, then exit(0) when shutdown completes
  expect(calls).toEqual(['reload', 'reload', 'shutdown']);
});

it('removes its handlers', () => {
  const target = new EventEmitter();
  const off = handleProcessSignals({ target, reload: async () => {}, shutdown: async () => {}, exit: () => {} });
  expect(target.listenerCount('SIGTERM')).toBe(1);
  off();
  expect(['SIGHUP', 'SIGTERM', 'SIGINT'].map((s) => target.listenerCount(s))).toEqual([0, 0, 0]);
});
