/**
 * "Did you mean": the known name closest to a mistyped one, for the errors of
 * unknown flags and option keys (`--rootfss`, `memroy`, `ulimits.nofle`).
 */

/** Edit distance with adjacent transpositions (optimal string alignment). */
export function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * The candidate closest to `name` (case aside), when it is close enough to be
 * what was meant: at most one edit in four characters (at least one).
 */
export function closest(name: string, candidates: Iterable<string>): string | undefined {
  const n = name.toLowerCase();
  let best: { c: string; d: number } | undefined;
  for (const c of candidates) {
    const d = editDistance(n, c.toLowerCase());
    if (best === undefined || d < best.d) best = { c, d };
  }
  // The name itself is no suggestion; the same in other case is.
  return best !== undefined && best.c !== name && best.d <= Math.max(1, Math.floor(name.length / 4)) ? best.c : undefined;
}

/** `; did you mean X?` when there is an X, else nothing. */
export function didYouMean(name: string, candidates: Iterable<string>, show: (c: string) => string = (c) => c): string {
  const c = closest(name, candidates);
  return c === undefined ? '' : `; did you mean ${show(c)}?`;
}

/** `cpuShares` → `cpu-shares`: an option's name as a flag. */
export function kebab(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}
