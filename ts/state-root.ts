/**
 * The one directory where tsbox keeps what outlives a call, for this user:
 * containers' state directories (ts/runtime/state.ts), the id registry
 * (ts/idmap) and the cgroup markers gc reads (ts/cgroups/gc.ts).
 * `/run/tsbox` as root; `$XDG_RUNTIME_DIR/tsbox` otherwise, or
 * `/run/user/<uid>/tsbox`, or `tsbox-state-<uid>` in the temporary directory.
 *
 * The last is in a directory every user can write, so another user may have
 * made it first (a directory of theirs, or a symlink) to read or replace a
 * container's state and control socket. It is used only when it is this
 * user's own directory, not a symlink, and writable by nobody else.
 *
 * The OCI runtime's `--root DIR` moves the containers' state directories,
 * not the rest: the id registry and the cgroup markers are one per user
 * (host-wide for root) in the default root, whatever root each container's
 * caller chose (podman and containerd each pass their own), or two roots
 * would hand out the same host ids and collect each other's cgroups.
 */
import { lstatSync, mkdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { fromSystemError, TsboxError } from './errors.js';

let chosen: string | undefined;

/** The state root this process uses instead of the default (the OCI runtime's `--root DIR`); undefined: the default again. */
export function chooseStateRoot(dir: string | undefined): void {
  chosen = dir;
}

/** Where this user's containers' state is kept (not made or checked: ensureStateRoot). */
export function stateRoot(uid: number = process.getuid?.() ?? 0, env: NodeJS.ProcessEnv = process.env, nested: () => boolean = inUserNamespace): string {
  return chosen ?? defaultStateRoot(uid, env, nested);
}

/**
 * This user's state root whatever `--root` says: for what there must be one
 * of per user, and per host for root (the id registry, the cgroup markers).
 */
export function defaultStateRoot(uid: number = process.getuid?.() ?? 0, env: NodeJS.ProcessEnv = process.env, nested: () => boolean = inUserNamespace): string {
  // Root of a user namespace an ordinary user made (rootless podman, `podman
  // unshare`) is that user: its $XDG_RUNTIME_DIR, unless it says it is root
  // (runc's rule). uid_map is read only when the environment asks.
  if (uid === 0 && !(env.XDG_RUNTIME_DIR && env.USER !== 'root' && nested())) return '/run/tsbox';
  if (env.XDG_RUNTIME_DIR) return join(env.XDG_RUNTIME_DIR, 'tsbox');
  const runUser = `/run/user/${uid}`;
  try {
    if (lstatSync(runUser).isDirectory()) return join(runUser, 'tsbox');
  } catch {
    // No session directory (no systemd login): one of our own below.
  }
  const shared = join(tmpdir(), `tsbox-state-${uid}`);
  // Read as well as written through this path (gc, ps, rm, their records
  // and sockets): one another user made is never used, even to read.
  untrustedIfMade(shared, uid);
  return shared;
}

/**
 * Throws when `root` exists and is not this user's own directory, not a
 * symlink, writable by nobody else (ensureStateRoot's rule); a missing one
 * is fine (whoever needs it makes it with ensureStateRoot).
 */
function untrustedIfMade(root: string, uid: number): void {
  let st;
  try {
    st = lstatSync(root);
  } catch {
    return;
  }
  checkOwn(root, st, uid);
}

function checkOwn(root: string, st: { isDirectory(): boolean; uid: number; mode: number }, uid: number): void {
  const hint = 'set XDG_RUNTIME_DIR to a directory of your own, or remove it if you made it';
  if (!st.isDirectory()) throw new TsboxError({ step: 'state', errno: 20, path: root, detail: 'the state directory is not a directory (a symlink?)', hint });
  if (st.uid !== uid) throw new TsboxError({ step: 'state', errno: 1, path: root, detail: `the state directory belongs to uid ${st.uid}, not to this user (${uid})`, hint });
  if ((st.mode & 0o022) !== 0) throw new TsboxError({ step: 'state', errno: 1, path: root, detail: `the state directory is writable by others (mode ${(st.mode & 0o7777).toString(8)})`, hint });
}

/** Whether this process is in a user namespace other than the host's (its uid_map is not the whole range). */
export function inUserNamespace(): boolean {
  if (nestedUserns === undefined) {
    try {
      nestedUserns = !/^\s*0\s+0\s+4294967295\s*$/.test(readFileSync('/proc/self/uid_map', 'utf8'));
    } catch {
      nestedUserns = false;
    }
  }
  return nestedUserns;
}

/** A process does not change user namespace: read once. */
let nestedUserns: boolean | undefined;

/**
 * Makes `root` (0700) when it is missing and checks it is this user's own:
 * a directory, not a symlink, owned by this user, writable by nobody else.
 * Checked at every use: an empty one is removed with the last container,
 * and anyone may make it again.
 */
export function ensureStateRoot(root: string = stateRoot(), uid: number = process.getuid?.() ?? 0): string {
  let st;
  try {
    // Looked at first: it is there on every launch but the first (one
    // system call, where making it each time took three).
    st = lstatSync(root);
  } catch {
    try {
      mkdirSync(root, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw fromSystemError('state', err, `create the state directory ${root}`, 'it must be writable: /run/tsbox as root, $XDG_RUNTIME_DIR/tsbox otherwise');
    }
    st = lstatSync(root);
  }
  checkOwn(root, st, uid);
  return root;
}
