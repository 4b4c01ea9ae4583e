/**
 * A synchronous pause, for the few places that must wait without giving
 * the event loop a turn (a teardown's retries, a gc ending a process). A
 * module of its own, so that the keeper (dist/keeper.cjs) does not load the
 * cgroups for it.
 */
const sleeper = new Int32Array(new SharedArrayBuffer(4));

/** Blocks the thread for `ms` milliseconds. */
export function sleepSync(ms: number): void {
  Atomics.wait(sleeper, 0, 0, ms);
}
