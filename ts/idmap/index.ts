/**
 * User namespace id maps, orchestrated from Node: which maps a container gets
 * (sync point 1) and writing them (sync point 3, DESIGN.md), in the kernel's
 * order: `setgroups`, then `uid_map`, then `gid_map`.
 *
 * - As root, the default: container 0..65535 → a 65536-id block of host ids
 *   from 0x70000000 that no other live container holds (a flock'd file per
 *   block under the state dir records it; the kernel releases it if tsbox dies).
 * - As another user: self → 0 plus the user's /etc/subuid range through
 *   newuidmap/newgidmap when both exist, else self → 0 alone (with a notice).
 * - Explicit maps (`uidMap`, `gidMap`), or none at all (`userns: 'host'`).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';

import { ROOT_MAP_BASE, ROOT_MAP_SIZE } from '../config/defaults.js';
import { TsboxError, fromSystemError } from '../errors.js';
import { loadNative } from '../native.js';
import { currentUserName, findHelper, subidRange } from './subid.js';

/** One line of a map: `size` ids from `containerId` inside are `hostId` outside. */
export interface IdMapping {
  containerId: number;
  hostId: number;
  size: number;
}

export interface IdMaps {
  uid: IdMapping[];
  gid: IdMapping[];
  /** `deny` is required before an unprivileged process may write gid_map itself. */
  setgroups: 'allow' | 'deny';
  /** Written by this process, or by the setuid newuidmap/newgidmap helpers. */
  via: 'direct' | 'newidmap';
  /** Told to the user once (the CLI prints it; the API leaves it to the caller). */
  notice?: string;
  /** Gives the host id block back (root's allocated ranges). */
  release?: () => void;
}

/** Number of 65536-id blocks between 0x70000000 and 0x80000000. */
const BLOCKS = 4096;

export function stateDir(): string {
  if (process.getuid?.() === 0) return '/run/tsbox';
  return `${process.env.XDG_RUNTIME_DIR ?? `/tmp/tsbox-${process.getuid?.()}`}/tsbox`;
}

/** The default maps for a root caller with an allocated, exclusive block. */
export function allocateRootMaps(containerId: string): IdMaps {
  const dir = `${stateDir()}/ids`;
  try {
    mkdirSync(dir, { recursive: true, mode: 0o755 });
  } catch (err) {
    throw fromSystemError('idmap', err, `create the id allocation directory ${dir}`);
  }
  const { binding } = loadNative();
  for (let k = 0; k < BLOCKS; k++) {
    const lock = binding.tryLockFile(`${dir}/${k}.lock`, `${containerId} ${process.pid}\n`);
    if (!lock) continue;
    const range = [{ containerId: 0, hostId: ROOT_MAP_BASE + k * ROOT_MAP_SIZE, size: ROOT_MAP_SIZE }];
    return { uid: range, gid: range.map((r) => ({ ...r })), setgroups: 'allow', via: 'direct', release: () => lock.release() };
  }
  throw new TsboxError({ step: 'idmap', errno: 28, path: dir, detail: `all ${BLOCKS} id ranges are held by running containers`, hint: 'stop some containers' });
}

export interface MapRequest {
  userns: 'private' | 'host';
  uidMap?: IdMapping[] | undefined;
  gidMap?: IdMapping[] | undefined;
}

export interface Caller {
  uid: number;
  gid: number;
  name: string;
}

function thisCaller(): Caller {
  return { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, name: currentUserName() };
}

/** The maps for this container, or null when it shares the host's user namespace. */
export function computeMaps(req: MapRequest, containerId: string, caller: Caller = thisCaller()): IdMaps | null {
  if (req.userns === 'host') return null;
  if (req.uidMap || req.gidMap) {
    const uid = req.uidMap ?? [{ containerId: 0, hostId: caller.uid, size: 1 }];
    const gid = req.gidMap ?? [{ containerId: 0, hostId: caller.gid, size: 1 }];
    if (caller.uid === 0) return { uid, gid, setgroups: 'allow', via: 'direct' };
    const selfOnly = (m: IdMapping[], id: number) => m.length === 1 && m[0]!.size === 1 && m[0]!.hostId === id;
    if (selfOnly(uid, caller.uid) && selfOnly(gid, caller.gid)) return { uid, gid, setgroups: 'deny', via: 'direct' };
    requireHelpers('the explicit id maps');
    return { uid, gid, setgroups: 'allow', via: 'newidmap' };
  }
  if (caller.uid === 0) return allocateRootMaps(containerId);
  return rootlessMaps(caller);
}

function requireHelpers(what: string): void {
  for (const h of ['newuidmap', 'newgidmap']) {
    if (!findHelper(h)) {
      throw new TsboxError({ step: 'idmap', errno: 2, path: h, detail: `${what} need ${h}, which is not installed`, hint: "install Debian's uidmap package (newuidmap, newgidmap)" });
    }
  }
}

/** self → 0, plus the user's subordinate range when it has one and the helpers exist. */
export function rootlessMaps(caller: Caller, files = { subuid: '/etc/subuid', subgid: '/etc/subgid' }): IdMaps {
  const user = { name: caller.name, id: caller.uid };
  const su = subidRange(files.subuid, user);
  const sg = subidRange(files.subgid, { name: caller.name, id: caller.uid });
  const helpers = findHelper('newuidmap') !== undefined && findHelper('newgidmap') !== undefined;
  if (su && sg && helpers) {
    // Container ids 1..N come from the range; N is capped at 65535 so that
    // container 0..65535 is covered as with root.
    const n = (r: { count: number }) => Math.min(r.count, ROOT_MAP_SIZE - 1);
    return {
      uid: [{ containerId: 0, hostId: caller.uid, size: 1 }, { containerId: 1, hostId: su.start, size: n(su) }],
      gid: [{ containerId: 0, hostId: caller.gid, size: 1 }, { containerId: 1, hostId: sg.start, size: n(sg) }],
      setgroups: 'allow',
      via: 'newidmap',
    };
  }
  const why = !su || !sg ? `${caller.name} has no range in /etc/subuid and /etc/subgid` : 'newuidmap/newgidmap are not installed (Debian package uidmap)';
  return {
    uid: [{ containerId: 0, hostId: caller.uid, size: 1 }],
    gid: [{ containerId: 0, hostId: caller.gid, size: 1 }],
    setgroups: 'deny',
    via: 'direct',
    notice: `tsbox: note: only your own uid maps into the container (${why}); other ids appear as nobody`,
  };
}

export function formatMap(map: readonly IdMapping[]): string {
  return map.map((m) => `${m.containerId} ${m.hostId} ${m.size}\n`).join('');
}

/** `CONTAINER:HOST:SIZE` → a mapping; undefined when malformed. */
export function parseMapping(s: string): IdMapping | undefined {
  const m = /^(\d+):(\d+):(\d+)$/.exec(s.trim());
  if (!m) return undefined;
  const [c, h, n] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (n < 1 || c + n > 2 ** 32 || h + n > 2 ** 32) return undefined;
  return { containerId: c, hostId: h, size: n };
}

/** Writes the maps of process `pid`'s user namespace. */
export function writeMaps(pid: number, maps: IdMaps, trace?: (line: string) => void): void {
  if (maps.via === 'newidmap') {
    for (const [tool, map] of [['newuidmap', maps.uid], ['newgidmap', maps.gid]] as const) {
      const args = [String(pid), ...map.flatMap((m) => [String(m.containerId), String(m.hostId), String(m.size)])];
      try {
        execFileSync(findHelper(tool) ?? tool, args, { stdio: ['ignore', 'ignore', 'pipe'] });
      } catch (err) {
        const stderr = String((err as { stderr?: Buffer }).stderr ?? '').trim();
        throw new TsboxError(
          { step: tool === 'newuidmap' ? 'uid_map' : 'gid_map', errno: 1, path: tool, detail: `${tool} ${args.join(' ')} failed${stderr ? `: ${stderr}` : ''}`, hint: 'the ranges must be yours in /etc/subuid and /etc/subgid' },
          { cause: err },
        );
      }
      trace?.(`${tool === 'newuidmap' ? 'uid_map' : 'gid_map'}: ${formatMap(map).trim().replaceAll('\n', ', ')} (${tool})`);
    }
    return;
  }
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
