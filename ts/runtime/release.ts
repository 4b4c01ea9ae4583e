/**
 * What a finished container held (its cgroup, its state directory, its id
 * range) goes back right after its result rather than before it: the
 * removals are synchronous (rmdir of a cgroup in every hierarchy, ~2 ms on
 * v1) and nothing in the result needs them done. They run on a timer, and
 * in any case before this process exits, even by process.exit().
 */

/** Releases not run yet. */
const pending = new Set<() => void>();

function runAllNow(): void {
  for (const release of pending) {
    pending.delete(release);
    runOne(release);
  }
}

function runOne(release: () => void): void {
  try {
    release();
  } catch {
    // Each one is given its chance; gc collects what one could not remove.
  }
}

/**
 * Runs `release` after the current result has been delivered: a timer, not
 * setImmediate, since a container's result itself waits one check phase
 * (for its streams), and this must come after it. Resolves once it ran.
 */
export function releaseLater(release: () => void): Promise<void> {
  if (pending.size === 0) process.on('exit', runAllNow);
  pending.add(release);
  return new Promise((resolve) =>
    setTimeout(() => {
      if (pending.delete(release)) runOne(release);
      if (pending.size === 0) process.off('exit', runAllNow);
      resolve();
    }, 0),
  );
}
