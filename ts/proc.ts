/**
 * Processes as /proc shows them, for records that name a process by its pid
 * and start time (a pid alone may be reused): the cgroup markers
 * (ts/cgroups/gc.ts), pasta's and the allowlist keeper's records
 * (ts/network). A module of its own, so that the keeper (dist/keeper.cjs)
 * does not load the cgroups.
 */
import { readFileSync } from 'node:fs';

/** The start time of `pid` in clock ticks since boot, or null when there is no such process (or only its zombie). */
export function processStart(pid: number): string | null {
  // This process's own never changes, and every launch's marker names it.
  if (pid === process.pid && ownStart !== undefined) return ownStart;
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // comm may hold spaces and parentheses: the fields that follow start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  if (fields[0] === 'Z' || fields[0] === 'X') return null;
  const start = fields[19] ?? null;
  if (pid === process.pid) ownStart = start;
  return start;
}

let ownStart: string | null | undefined;
