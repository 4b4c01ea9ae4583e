/**
 * Root's default cgroup parent must be root's own. The default is found from
 * where the caller runs (parentPath), and root may run from a cgroup a user
 * owns: `sudo tsbox run` in a desktop terminal is in a scope under
 * `user@UID.service/app.slice`, which systemd delegates to that user. A
 * container made there is in the user's subtree, and on cgroup v2 whoever
 * may write a common ancestor's cgroup.procs may move processes between its
 * cgroups: the user could move the container's processes out of its limits,
 * or freeze and kill them, and could have made the `tsbox` directory in
 * advance to hold them (Documentation/admin-guide/cgroup-v2.rst,
 * "Delegation Containment").
 *
 * So, as root with no parent given, the default parent is used when it and
 * every cgroup above it up to the hierarchy's root are directories owned by
 * uid 0 (lstat: a symlink is not one). Otherwise the containers go under the
 * root of the hierarchy, as runc's and podman's cgroupfs drivers put theirs
 * (`/sys/fs/cgroup/tsbox/<id>`). A `tsbox` directory that is not root's is
 * refused, by name and owner: only root can have made it or given it away.
 * A parent given explicitly (--cgroup-parent, an OCI cgroupsPath) is the
 * administrator's choice and is taken as given.
 */
import { posix } from 'node:path';

import type { TsboxError } from '../errors.js';
import { cgroupDir, parentPath, type CgroupLayout, type HierarchyMount } from './detect.js';
import { cgroupProblem, EPERM, type CgroupFs, type PathOwner } from './fs.js';

/**
 * Directories found root's, per filesystem: no one but root can change that
 * (only root can chown, and only who may write a cgroup's parent can remove
 * it and make another in its place, which for a root-owned chain is root).
 * So each is looked at once per process, and a launch after the first
 * costs no lstat.
 */
const verified = new WeakMap<CgroupFs, Set<string>>();

/** What is wrong with a path that is not a directory of root's, for messages. */
const held = (o: PathOwner) => (o.isDirectory ? `owned by uid ${o.uid}` : 'not a directory (a symlink?)');

const tsboxIn = (dir: string) => posix.join(dir, 'tsbox');

export interface DefaultParent {
  /** The hierarchy: a v1 name or `unified`. */
  name: string;
  mount: HierarchyMount;
  /** The default parent's cgroup path (parentPath). */
  path: string;
}

/**
 * `dir` was found a directory of root's by this process, and so exists:
 * root's default parents, which a launch need not stat again.
 */
export function knownRootDir(fs: CgroupFs, dir: string): boolean {
  return verified.get(fs)?.has(dir) ?? false;
}

/** Every hierarchy a container may have a cgroup in on this host, with its default parent. */
export function defaultParents(layout: CgroupLayout): DefaultParent[] {
  const out: DefaultParent[] = [];
  if (layout.mode !== 'v2') for (const [name, mount] of layout.v1) out.push({ name, mount, path: parentPath(layout, name) });
  if (layout.unified) out.push({ name: 'unified', mount: layout.unified, path: parentPath(layout, 'unified') });
  return out;
}

/**
 * For root: the cgroup path to make `tsbox/<id>` under in each hierarchy of
 * `parents` (see the file comment), by hierarchy name; or the refusal (EPERM)
 * naming a `tsbox` directory, or a hierarchy root, that is not root's. One
 * lstat batch for every directory not known to be root's already.
 */
export function rootOwnedParents(parents: readonly DefaultParent[], fs: CgroupFs, trace?: (line: string) => void): ReadonlyMap<string, string | TsboxError> {
  let known = verified.get(fs);
  if (known === undefined) verified.set(fs, (known = new Set()));
  // Each default parent, the directories above it up to its hierarchy's
  // root, and its tsbox directory.
  const dirs: string[] = [];
  const wanted: string[] = [];
  for (const p of parents) {
    const dir = cgroupDir(p.mount, p.path);
    dirs.push(dir);
    for (let d = dir; ; d = posix.dirname(d)) {
      if (!known.has(d)) wanted.push(d);
      if (d === p.mount.mountpoint || d === '/') break;
    }
    if (!known.has(tsboxIn(dir))) wanted.push(tsboxIn(dir));
  }
  const owners = new Map<string, PathOwner | null>();
  const look = (paths: string[]) => {
    if (paths.length === 0) return;
    const got = fs.owners(paths);
    for (let i = 0; i < paths.length; i++) owners.set(paths[i]!, got[i] ?? null);
  };
  look(wanted);
  /** `d` is a directory of root's (remembered); false when it is not, or missing. */
  const ok = (d: string): boolean => {
    if (known.has(d)) return true;
    const o = owners.get(d);
    if (o == null || o.uid !== 0 || !o.isDirectory) return false;
    known.add(d);
    return true;
  };
  /** A `tsbox` directory that exists is root's; refused otherwise. */
  const refusedTsbox = (dir: string): TsboxError | null => {
    const o = owners.get(dir);
    if (o == null || ok(dir)) return null;
    return cgroupProblem(
      dir,
      o.isDirectory ? `tsbox's shared cgroup is owned by uid ${o.uid}, not root: that user could move, freeze or kill the containers' processes` : "tsbox's shared cgroup is not a directory (a symlink?)",
      `remove it if no container of root's is in it (rmdir ${dir}), or pass a cgroup parent that is root's (--cgroup-parent)`,
      EPERM,
    );
  };
  const out = new Map<string, string | TsboxError>();
  // Every hierarchy keeps its default, whose tsbox directory exists and is root's.
  for (let i = 0; i < parents.length; i++) {
    const p = parents[i]!;
    const top = p.mount.mountpoint;
    // The topmost directory that is not root's. One that does not exist is
    // left to the checks that follow: nothing in it is anyone's yet.
    let bad: string | null = null;
    for (let d = dirs[i]!; ; d = posix.dirname(d)) {
      if (!ok(d) && owners.get(d) != null) bad = d;
      if (d === top || d === '/') break;
    }
    if (bad === null) {
      out.set(p.name, refusedTsbox(tsboxIn(dirs[i]!)) ?? p.path);
      continue;
    }
    const o = owners.get(bad)!;
    if (!ok(top)) {
      const to = owners.get(top);
      const topIs = to == null ? 'missing' : held(to);
      const detail =
        bad === top
          ? `the root of the cgroup hierarchy is ${topIs}, not root's: there is no cgroup of root's to put root's containers in`
          : `root's containers would go into a cgroup ${held(o)}, which could move, freeze or kill their processes, and the hierarchy's root ${top} is ${topIs}, not root's either`;
      out.set(p.name, cgroupProblem(bad, detail, "pass a cgroup parent that is root's (--cgroup-parent), or run tsbox from a cgroup of root's (systemd-run --scope tsbox ...)", EPERM));
      continue;
    }
    if (!known.has(tsboxIn(top)) && !owners.has(tsboxIn(top))) look([tsboxIn(top)]);
    const refused = refusedTsbox(tsboxIn(top));
    if (refused === null) trace?.(`cgroup: ${bad} is ${held(o)}, not root's: the containers go under ${top} instead`);
    out.set(p.name, refused ?? p.mount.root);
  }
  return out;
}
