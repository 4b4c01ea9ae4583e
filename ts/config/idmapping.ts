/**
 * One line of a uid or gid map, as the options give it. Parsing belongs to
 * the configuration; allocating, registering and writing maps is
 * `ts/idmap`'s, which builds on this.
 */

/** One line of a map: `size` ids from `containerId` inside are `hostId` outside. */
export interface IdMapping {
  containerId: number;
  hostId: number;
  size: number;
}

/** `CONTAINER:HOST:SIZE` → a mapping; undefined when malformed. */
export function parseMapping(s: string): IdMapping | undefined {
  const m = /^(\d+):(\d+):(\d+)$/.exec(s.trim());
  if (!m) return undefined;
  const [c, h, n] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (n < 1 || c + n > 2 ** 32 || h + n > 2 ** 32) return undefined;
  return { containerId: c, hostId: h, size: n };
}
