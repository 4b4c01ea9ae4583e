/**
 * User namespace id maps, orchestrated from Node: which maps a container gets
 * (sync point 1) and writing them (sync point 3, DESIGN.md), in the kernel's
 * order: `setgroups`, then `uid_map`, then `gid_map`.
 *
 * - As root, the default: container 0..65535 → a 65536-id block of host ids
 *   from 0x70000000 that no other live container holds and no user's
 *   /etc/subuid or /etc/subgid range overlaps (a flock'd file per block in
 *   /run/tsbox/ids records it, whatever `--root` says; the kernel releases
 *   it if tsbox dies).
 * - As another user: self → 0 plus the user's /etc/subuid range through
 *   newuidmap/newgidmap when both exist, else self → 0 alone (with a notice).
 * - Explicit maps (`uidMap`, `gidMap`): as root, never over a live
 *   container's ids, and with a notice when they reach a user's subordinate
 *   ids. Or none at all (`userns: 'host'`).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { ROOT_MAP_BASE, ROOT_MAP_SIZE } from '../config/defaults.js';
import type { IdMapping } from '../config/idmapping.js';
import { TsboxError, fromSystemError } from '../errors.js';
import { defaultStateRoot, ensureStateRoot } from '../state-root.js';
import { loadNative, type NativeFileLock } from '../native.js';
import { currentUserName, findHelper, subidRange, subidRanges } from './subid.js';

export { parseMapping, type IdMapping } from '../config/idmapping.js';

export interface IdMaps {
  uid: IdMapping[];
  gid: IdMapping[];
  /** `deny` is required before an unprivileged process may write gid_map itself. */
  setgroups: 'allow' | 'deny';
  /** Written by this process, or by the setuid newuidmap/newgidmap helpers. */
  via: 'direct' | 'newidmap';
  /** Told to the user once (the CLI prints it; the API leaves it to the caller). */
  notice?: string;
  /** Gives the host ids back (root's allocated or registered ranges). */
  release?: () => void;
  /** The registry lock that holds them, which tsbox-init keeps until the container's processes are gone. */
  lock?: NativeFileLock;
}

/** Number of 65536-id blocks between 0x70000000 and 0x80000000. */
const BLOCKS = 4096;

/**
 * The id registry: one locked file per live container's host ids under
 * `ids` in root's default state root (/run/tsbox), `<k>.lock` for root's
 * block k, `x-<id>.lock` (its ranges as JSON) for explicit maps. One for
 * the host: a registry per `--root` let containers of two roots take the
 * same block (ts/state-root.ts). A file whose lock nobody holds is stale (its
 * holder died: the kernel drops a flock with its last descriptor, which the
 * container's tsbox-init keeps until every process of the container is
 * gone). Scans and registrations run under one allocator lock, so two
 * launches never take overlapping ids.
 */
interface Live {
  uid: IdMapping[];
  gid: IdMapping[];
  /** Whose: `<container id> <pid>`, the note of the lock. */
  note: string;
}

function registryDir(): string {
  // The registry decides which host ids a container gets: root's own, not
  // a symlink, writable by nobody else, as the state root above it.
  return ensureStateRoot(join(ensureStateRoot(defaultStateRoot()), 'ids'));
}

const blockRange = (k: number): IdMapping[] => [{ containerId: 0, hostId: ROOT_MAP_BASE + k * ROOT_MAP_SIZE, size: ROOT_MAP_SIZE }];

/**
 * The ranges live containers hold; stale entries are removed on the way.
 * Without `blocks`, only the explicit registrations (x-*.lock): what a
 * block may overlap, since blocks never overlap each other.
 */
function liveRanges(dir: string, { blocks = true }: { blocks?: boolean } = {}): Live[] {
  const { binding } = loadNative();
  const live: Live[] = [];
  for (const name of readdirSync(dir)) {
    const block = blocks ? /^(\d+)\.lock$/.exec(name) : null;
    if (!block && !/^x-[0-9A-Za-z_.-]+\.lock$/.test(name)) continue;
    const path = `${dir}/${name}`;
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch {
      continue; // Released meanwhile.
    }
    const probe = binding.tryLockFile(path, text);
    if (probe) {
      // Nobody holds it: a block's file stays for its next holder (emptied),
      // an explicit registration's goes.
      if (block) probe.unlock();
      else probe.release();
      continue;
    }
    if (block) {
      const range = blockRange(Number(block[1]));
      live.push({ uid: range, gid: range, note: text.trim() });
    } else {
      try {
        const j = JSON.parse(text) as Live;
        live.push({ uid: j.uid, gid: j.gid, note: j.note });
      } catch {
        // Being written by its holder right now: the allocator lock prevents that; ignore.
      }
    }
  }
  return live;
}

const overlaps = (a: IdMapping[], b: IdMapping[]) => a.some((x) => b.some((y) => x.hostId < y.hostId + y.size && y.hostId < x.hostId + x.size));

/** Runs `fn` holding the allocator lock. */
function allocating<T>(dir: string, containerId: string, fn: () => T): T {
  const lock = loadNative().binding.waitLockFile(`${dir}/allocator`, `${containerId} ${process.pid}\n`);
  try {
    return fn();
  } finally {
    // The file stays: it is this directory's lock for good (see unlock()).
    lock.unlock();
  }
}

/**
 * Removes the registry's stale entries (lock files nobody holds: what a
 * detached container's monitor leaves when it ends), as every allocation
 * does on its way; for `tsbox gc`. Returns how many ranges are live.
 */
export function pruneIdRegistry(): number {
  // A user whose containers never registered ids has no registry to make now.
  if (!existsSync(join(defaultStateRoot(), 'ids'))) return 0;
  const dir = registryDir();
  return allocating(dir, 'gc', () => liveRanges(dir).length);
}

/** The files whose ranges belong to ordinary users (their rootless containers map them). */
export const SUBID_FILES = { subuid: '/etc/subuid', subgid: '/etc/subgid' };

/**
 * The default maps for a root caller with an allocated, exclusive block
 * (`dir`: the registry, and `subid` the users' ranges, for tests).
 */
export function allocateRootMaps(containerId: string, dir: string = registryDir(), subid: { subuid: string; subgid: string } = SUBID_FILES): IdMaps {
  const { binding } = loadNative();
  // A user's subordinate ids are theirs: their rootless containers run as
  // them, and a block over them would share files and processes with those.
  // Any user's range, uid or gid: a block is both.
  const users = [...subidRanges(subid.subuid), ...subidRanges(subid.subgid)].map((r) => [{ containerId: 0, hostId: r.start, size: r.count }]);
  return allocating(dir, containerId, () => {
    // A block a live container holds is locked: its tryLock fails below.
    // Each block file is not read first (a launch read and probed every
    // block file ever made: ~2 ms on a CLI start with 40 of them).
    const live = liveRanges(dir, { blocks: false });
    let given = 0;
    for (let k = 0; k < BLOCKS; k++) {
      const range = blockRange(k);
      if (users.some((u) => overlaps(range, u))) {
        given++;
        continue;
      }
      if (live.some((l) => overlaps(range, l.uid) || overlaps(range, l.gid))) continue;
      const lock = binding.tryLockFile(`${dir}/${k}.lock`, `${containerId} ${process.pid}\n`);
      if (!lock) continue;
      return { uid: range, gid: range.map((r) => ({ ...r })), setgroups: 'allow', via: 'direct', release: () => lock.unlock(), lock };
    }
    throw new TsboxError({
      step: 'idmap',
      errno: 28,
      path: dir,
      detail: given > 0 ? `all ${BLOCKS} id ranges are held by running containers, or overlap users' ranges in ${subid.subuid} or ${subid.subgid} (${given} of them)` : `all ${BLOCKS} id ranges are held by running containers`,
      hint: given > 0 ? `stop some containers, or move the ranges in ${subid.subuid} and ${subid.subgid} below ${ROOT_MAP_BASE}` : 'stop some containers',
    });
  });
}

/** Describes maps for a message: `0:10000:2000`. */
const describe = (m: IdMapping[]) => m.map((x) => `${x.containerId}:${x.hostId}:${x.size}`).join(', ');

/**
 * A note when explicit maps reach into an ordinary user's subordinate ids:
 * uidMap into a range /etc/subuid grants, gidMap into one of /etc/subgid.
 * That user's own user namespaces (rootless containers, through newuidmap)
 * may map those host ids, and so reach the container's processes and files.
 *
 * A note, not a refusal. An explicit map is the administrator's choice, and
 * podman, runc and crun take it as root unchecked. Engines set ranges aside
 * for root's containers in these very files, under a user of their own
 * (podman's `containers` for --userns=auto, the kubelet's `kubelet`,
 * Docker's `dockremap`), and their maps reach tsbox as an OCI runtime: a
 * refusal would break them, and an override to get past it would let the
 * accident through too. A range granted to root is root's own set-aside,
 * which no other user's newuidmap may use: no note.
 */
function subidOverlapNotice(uid: IdMapping[], gid: IdMapping[], subid: { subuid: string; subgid: string }): string | undefined {
  const found: string[] = [];
  for (const [kind, maps, file] of [['uidMap', uid, subid.subuid], ['gidMap', gid, subid.subgid]] as const) {
    const theirs = subidRanges(file).filter((r) => r.owner !== 'root' && r.owner !== '0' && overlaps(maps, [{ containerId: 0, hostId: r.start, size: r.count }]));
    if (theirs.length === 0) continue;
    const owners = theirs.slice(0, 3).map((r) => `${r.owner}'s ${r.start}:${r.count}`).join(', ') + (theirs.length > 3 ? `, and ${theirs.length - 3} more` : '');
    found.push(`${kind} ${describe(maps)} overlaps ${owners} in ${file}`);
  }
  if (found.length === 0) return undefined;
  return (
    `tsbox: note: ${found.join('; ')}: a user's own user namespaces (rootless containers, newuidmap) can map those host ids and reach this container's processes and files; ` +
    `map ids no user is granted (leave uidMap and gidMap out for a block of tsbox's own), or, if the range is set aside for root's containers, grant it to root in ${subid.subuid} and ${subid.subgid}`
  );
}

/**
 * Registers explicit maps (`uidMap`/`gidMap`, `--preset contained`) with the
 * registry: refused when they overlap the ids of a live container, or map
 * host root at all (that is `userns: 'host'`, said out loud); a notice when
 * they overlap a user's subordinate ids (see subidOverlapNotice). `dir` and
 * `subid`: the registry and the users' ranges, for tests.
 */
export function registerExplicitMaps(
  uid: IdMapping[],
  gid: IdMapping[],
  containerId: string,
  dir?: string,
  subid: { subuid: string; subgid: string } = SUBID_FILES,
): { release: () => void; lock: NativeFileLock; notice?: string } {
  for (const [kind, maps] of [['uidMap', uid], ['gidMap', gid]] as const) {
    if (maps.some((m) => m.hostId === 0)) {
      throw new TsboxError({
        step: 'config',
        errno: 0,
        path: kind,
        detail: `${describe(maps)} maps host root (host id 0) into the container`,
        hint: "container root would be the host's real root; if that is what you want, say --userns host (no user namespace at all)",
      });
    }
  }
  const notice = subidOverlapNotice(uid, gid, subid);
  const where = dir ?? registryDir();
  const { binding } = loadNative();
  return allocating(where, containerId, () => {
    for (const l of liveRanges(where)) {
      const which = overlaps(uid, l.uid) ? ['uid', uid] as const : overlaps(gid, l.gid) ? ['gid', gid] as const : null;
      if (which) {
        throw new TsboxError({
          step: 'idmap',
          errno: 16,
          path: `${which[0]}Map`,
          detail: `the host ${which[0]}s ${describe(which[1])} overlap those of a running container (${l.note.split(' ')[0]?.slice(0, 12) ?? 'unknown'})`,
          hint: 'two containers must not share host ids (they could reach each other\'s files and processes): give this one other ids, or wait for that one to end',
        });
      }
    }
    const note = JSON.stringify({ uid, gid, note: `${containerId} ${process.pid}` });
    const lock = binding.tryLockFile(`${where}/x-${containerId}.lock`, note);
    if (!lock) throw new TsboxError({ step: 'idmap', errno: 16, path: `${where}/x-${containerId}.lock`, detail: 'the id registration of this container id is held already', hint: 'container ids must be unique' });
    return { release: () => lock.release(), lock, ...(notice !== undefined ? { notice } : {}) };
  });
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

/** Where root's host ids are allocated and registered (the registry above; tests pass their own). */
export interface Registry {
  allocate(containerId: string): IdMaps;
  register(uid: IdMapping[], gid: IdMapping[], containerId: string): { release: () => void; lock?: NativeFileLock; notice?: string };
}

export const registry: Registry = { allocate: allocateRootMaps, register: registerExplicitMaps };

/** The maps for this container, or null when it shares the host's user namespace. */
export function computeMaps(req: MapRequest, containerId: string, caller: Caller = thisCaller(), ids: Registry = registry): IdMaps | null {
  if (req.userns === 'host') return null;
  if (req.uidMap || req.gidMap) {
    const uid = req.uidMap ?? [{ containerId: 0, hostId: caller.uid, size: 1 }];
    const gid = req.gidMap ?? [{ containerId: 0, hostId: caller.gid, size: 1 }];
    if (caller.uid === 0) return { uid, gid, setgroups: 'allow', via: 'direct', ...ids.register(uid, gid, containerId) };
    const selfOnly = (m: IdMapping[], id: number) => m.length === 1 && m[0]!.size === 1 && m[0]!.hostId === id;
    if (selfOnly(uid, caller.uid) && selfOnly(gid, caller.gid)) return { uid, gid, setgroups: 'deny', via: 'direct' };
    requireHelpers('the explicit id maps');
    return { uid, gid, setgroups: 'allow', via: 'newidmap' };
  }
  if (caller.uid === 0) return ids.allocate(containerId);
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
  const fix = !su || !sg
    ? `for 65536 ids, add one: sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 ${caller.name}`
    : 'for 65536 ids, install them: sudo apt-get install uidmap';
  return {
    uid: [{ containerId: 0, hostId: caller.uid, size: 1 }],
    gid: [{ containerId: 0, hostId: caller.gid, size: 1 }],
    setgroups: 'deny',
    via: 'direct',
    notice: `tsbox: note: only your own uid maps into the container (${why}); other ids appear as nobody, and -u with another user fails: ${fix}`,
  };
}

export function formatMap(map: readonly IdMapping[]): string {
  return map.map((m) => `${m.containerId} ${m.hostId} ${m.size}\n`).join('');
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
