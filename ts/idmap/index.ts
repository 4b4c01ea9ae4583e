/**
 * User namespace id maps, written from Node at sync point 3 (DESIGN.md): the
 * helper has cloned the container into a new user namespace and waits while we
 * write `setgroups`, `uid_map` and `gid_map` in the kernel's order.
 */
import { writeFileSync } from 'node:fs';

import { ROOT_MAP_BASE, ROOT_MAP_SIZE } from '../config/defaults.js';
import { fromSystemError } from '../errors.js';

/** One line of a map: `size` ids from `containerId` inside are `hostId` outside. */
export interface IdMapping {
  containerId: number;
  hostId: number;
  size: number;
}

export interface IdMaps {
  uid: IdMapping[];
  gid: IdMapping[];
  /** `deny` is required before an unprivileged process may write gid_map. */
  setgroups: 'allow' | 'deny';
}

/**
 * The maps for this caller. As root: container 0..65535 → an unprivileged host
 * range. Otherwise the caller's own ids map to 0, the one mapping the kernel
 * lets an unprivileged process write.
 */
export function defaultMaps(uid = process.getuid?.() ?? 0, gid = process.getgid?.() ?? 0): IdMaps {
  if (uid === 0) {
    const range = [{ containerId: 0, hostId: ROOT_MAP_BASE, size: ROOT_MAP_SIZE }];
    return { uid: range, gid: range.map((r) => ({ ...r })), setgroups: 'allow' };
  }
  return {
    uid: [{ containerId: 0, hostId: uid, size: 1 }],
    gid: [{ containerId: 0, hostId: gid, size: 1 }],
    setgroups: 'deny',
  };
}

export function formatMap(map: readonly IdMapping[]): string {
  return map.map((m) => `${m.containerId} ${m.hostId} ${m.size}\n`).join('');
}

/** Writes the maps of process `pid`'s user namespace. */
export function writeMaps(pid: number, maps: IdMaps, trace?: (line: string) => void): void {
  const write = (file: string, data: string, hint: string) => {
    const path = `/proc/${pid}/${file}`;
    try {
      writeFileSync(path, data);
    } catch (err) {
      throw fromSystemError(file, err, `write ${JSON.stringify(data.trim())} to ${path}`, hint);
    }
    trace?.(`${file}: ${data.trim().replaceAll('\n', ', ')}`);
  };
  // setgroups first: the kernel refuses an unprivileged gid_map until it is "deny".
  write('setgroups', maps.setgroups, 'the kernel has no /proc/PID/setgroups before 3.19');
  write('uid_map', formatMap(maps.uid), 'the host ids must exist and be yours to map; as non-root only your own uid maps without newuidmap');
  write('gid_map', formatMap(maps.gid), 'the host ids must exist and be yours to map; as non-root only your own gid maps without newgidmap');
}
