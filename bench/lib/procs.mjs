// Looking at a peer's processes from the outside, through /proc: the process
// tree under the process the bench started, each process's peak RSS, and what
// isolation the container's process really got. The same reading for every
// peer, so no peer is taken at its word.
import { readFileSync, readlinkSync, readdirSync } from 'node:fs';

export const NAMESPACES = ['user', 'pid', 'mnt', 'net', 'ipc', 'uts', 'cgroup'];

function read(path) {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

function link(path) {
  try {
    return readlinkSync(path);
  } catch {
    return null;
  }
}

/** Direct children of `pid`, from every thread's children list. */
export function children(pid) {
  let tasks;
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  const out = [];
  for (const t of tasks) {
    const s = read(`/proc/${pid}/task/${t}/children`);
    if (s) for (const c of s.trim().split(/\s+/)) if (c) out.push(Number(c));
  }
  return out;
}

/** `root` and all its descendants, parents first. */
export function tree(root) {
  const out = [];
  const queue = [root];
  while (queue.length > 0) {
    const pid = queue.shift();
    out.push(pid);
    queue.push(...children(pid));
  }
  return out;
}

export function statusField(status, name) {
  const m = status.match(new RegExp(`^${name}:\\s*(.*)$`, 'm'));
  return m ? m[1].trim() : null;
}

const kib = (v) => (v === null ? null : Number.parseInt(v, 10));

/** One process, as the host sees it; null when it is gone. */
export function inspect(pid) {
  const status = read(`/proc/${pid}/status`);
  if (status === null) return null;
  const ns = {};
  for (const n of NAMESPACES) ns[n] = link(`/proc/${pid}/ns/${n}`);
  const capEff = statusField(status, 'CapEff');
  return {
    pid,
    ppid: Number(statusField(status, 'PPid')),
    comm: statusField(status, 'Name'),
    uid: Number((statusField(status, 'Uid') ?? '-1').split(/\s+/)[0]),
    vmHWMKiB: kib(statusField(status, 'VmHWM')),
    vmRSSKiB: kib(statusField(status, 'VmRSS')),
    seccomp: Number(statusField(status, 'Seccomp') ?? 0),
    seccompFilters: Number(statusField(status, 'Seccomp_filters') ?? 0),
    noNewPrivs: statusField(status, 'NoNewPrivs') === '1',
    capEff: capEff === null ? null : BigInt(`0x${capEff}`),
    ns,
    cgroup: (read(`/proc/${pid}/cgroup`) ?? '').trim().split('\n').filter(Boolean),
    root: link(`/proc/${pid}/root`),
  };
}

export function popcount(n) {
  let c = 0;
  for (let v = n; v > 0n; v >>= 1n) c += Number(v & 1n);
  return c;
}

/** The cgroup path of `proc` on a controller line (`pids`), or the v2 line (`""`). */
export function cgroupOf(proc, controller) {
  for (const line of proc.cgroup) {
    const [, ctrls, path] = line.split(/:(.*?):/);
    if (ctrls !== undefined && ctrls.split(',').includes(controller)) return path;
  }
  return null;
}

/**
 * The isolation `proc` runs with, against `host` (the bench process itself):
 * which namespaces are its own, seccomp, no_new_privs, capabilities, whether it
 * has a cgroup of its own, how its root was changed, and its host uid.
 */
export function isolation(proc, host) {
  const own = NAMESPACES.filter((n) => proc.ns[n] !== null && proc.ns[n] !== host.ns[n]);
  // A cgroup of its own: on every v1 controller the bench can see, or on v2, the
  // container's path differs from the bench's.
  const controllers = ['pids', 'memory', 'cpu', ''];
  const cgroups = controllers.map((c) => ({ c, mine: cgroupOf(host, c), theirs: cgroupOf(proc, c) })).filter((x) => x.mine !== null && x.theirs !== null);
  const ownCgroup = cgroups.length > 0 && cgroups.some((x) => x.theirs !== x.mine);
  const pidsPath = cgroupOf(proc, 'pids') ?? cgroupOf(proc, '');
  return {
    namespaces: own,
    seccomp: proc.seccomp === 2 ? 'filter' : proc.seccomp === 1 ? 'strict' : 'off',
    seccompFilters: proc.seccompFilters,
    noNewPrivs: proc.noNewPrivs,
    capabilities: proc.capEff === null ? null : popcount(proc.capEff),
    ownCgroup,
    cgroup: pidsPath,
    // After pivot_root in its own mount namespace the root reads as "/"; after a
    // chroot it reads as the rootfs path.
    root: proc.root === '/' && own.includes('mnt') ? 'pivot_root' : proc.root === '/' ? 'host' : 'chroot',
    rootLink: proc.root,
    hostUid: proc.uid,
  };
}
