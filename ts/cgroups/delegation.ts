/**
 * Where an ordinary user may make cgroups on cgroup v2 (issue 20). The kernel
 * lets a user manage a subtree delegated to it: a cgroup whose directory,
 * cgroup.procs and cgroup.subtree_control the user may write
 * (Documentation/admin-guide/cgroup-v2.rst, "Delegation"). Moving a process
 * between two cgroups also needs write access to cgroup.procs of their
 * common ancestor, which is the chosen cgroup itself here, since the
 * container's process starts in the caller's own.
 *
 * The order, after an explicit cgroup parent (which is taken as given):
 *
 * 1. the parent of the caller's own cgroup, as for root (parentPath): a
 *    systemd user manager's slice (`user@UID.service/app.slice`) when the
 *    caller runs in one of its scopes, and nothing has to move;
 * 2. the caller's own cgroup, when it is the delegated one (`systemd-run
 *    --user --scope -p Delegate=yes`, a shell started in a delegated
 *    cgroup). It holds processes (the caller at least), and cgroup v2 lets a
 *    cgroup enable controllers for its children only while it has none of
 *    its own: they move first to a leaf, {@link LEAF}, as podman moves its
 *    own processes;
 * 3. the nearest ancestor above those the user may write.
 *
 * systemd's user manager could also be asked over D-Bus for a transient
 * scope with Delegate=yes (crun's and podman's systemd drivers do); tsbox
 * does not do that yet, and its note names the systemd-run line instead.
 */
import { posix } from 'node:path';

import { cgroupDir, parentPath, type CgroupLayout } from './detect.js';
import { cgroupProblem, EACCES, type CgroupFs } from './fs.js';

/** The leaf that the processes of a delegated cgroup move to before tsbox enables controllers in it. */
export const LEAF = 'tsbox-leaf';

export interface DelegatedParent {
  /** The cgroup path (as in /proc/self/cgroup) to create `tsbox/<id>` under. */
  parent: string;
  /** It is the caller's own cgroup: its processes move to {@link LEAF} first. */
  evacuate: boolean;
}

/** The files a user must be able to write in a cgroup to make children and move processes into them. */
const NEEDED = ['cgroup.procs', 'cgroup.subtree_control'] as const;

/** Why `dir` is no cgroup the caller may manage, or null when it is one. */
function unusable(dir: string, fs: CgroupFs): string | null {
  if (!fs.exists(dir)) return 'it does not exist';
  if (!fs.writable(dir)) return 'its directory is not writable (no child cgroups)';
  for (const file of NEEDED) if (!fs.writable(posix.join(dir, file))) return `its ${file} is not writable`;
  return null;
}

/**
 * The delegated cgroup an ordinary user's containers go under (see the file
 * comment); throws EACCES naming each cgroup tried and why it failed.
 */
export function delegatedParent(layout: CgroupLayout, fs: CgroupFs, uid: number): DelegatedParent {
  const mount = layout.unified;
  const own = layout.own.unified;
  if (mount === null || own === null) throw cgroupProblem('/proc/self/cgroup', 'this process has no cgroup v2 membership', null, EACCES);
  const candidates: { path: string; role: string; evacuate: boolean }[] = [];
  if (own !== '/') {
    const parent = posix.dirname(own);
    if (parent !== '/') candidates.push({ path: parent, role: 'the parent of this process\'s cgroup', evacuate: false });
    candidates.push({ path: own, role: 'this process\'s own cgroup', evacuate: true });
    for (let a = posix.dirname(parent); a !== '/' && parent !== '/'; a = posix.dirname(a)) candidates.push({ path: a, role: 'an ancestor', evacuate: false });
  }
  const tried: string[] = [];
  for (const c of candidates) {
    let dir: string;
    try {
      dir = cgroupDir(mount, c.path);
    } catch {
      // Above the subtree mounted here (a container's cgroup namespace).
      break;
    }
    const why = unusable(dir, fs);
    if (why === null) return { parent: c.path, evacuate: c.evacuate };
    tried.push(`${c.path} (${c.role}): ${why}`);
  }
  const detail = tried.length > 0 ? `no cgroup here is delegated to uid ${uid}: ${tried.join('; ')}` : `this process is in the root cgroup, which only root may manage`;
  throw cgroupProblem(mount.mountpoint, detail, DELEGATE_HINT, EACCES);
}

/** How an ordinary user gets a delegated cgroup to run tsbox in. */
export const DELEGATE_HINT =
  'run tsbox in a cgroup delegated to you: `systemd-run --user --scope -p Delegate=yes tsbox run ...` in a systemd user session, or pass --cgroup-parent (cgroupParent) a cgroup you own';

/**
 * The cgroup path this caller's containers go under on the unified
 * hierarchy, for gc's look for unmarked ones: the delegated parent of an
 * ordinary user on v2 when there is one, else parentPath's.
 */
export function unifiedParent(layout: CgroupLayout, fs: CgroupFs, configured: string | undefined, uid: number): string {
  if (configured === undefined && uid !== 0 && layout.mode === 'v2') {
    try {
      return delegatedParent(layout, fs, uid).parent;
    } catch {
      // None: nothing of this user's can be there either.
    }
  }
  return parentPath(layout, 'unified', configured);
}
