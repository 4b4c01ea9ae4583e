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
 * would hand out the same host ids and collect each other's cgroups. A
 * chosen root is checked at every use, to read as well as to write (its
 * state.json names hooks that `delete` runs), and so is every directory
 * above it.
 */
import { lstatSync, mkdirSync, readFileSync, realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';

import { fromSystemError, TsboxError } from './errors.js';

let chosen: string | undefined;

/**
 * The chosen root resolved and checked; `complete` once every directory
 * above it existed when checked (they change only by their owners' hands
 * then: checked once).
 */
let resolved: { uid: number; path: string; complete: boolean } | undefined;

/** The state root this process uses instead of the default (the OCI runtime's `--root DIR`); undefined: the default again. */
export function chooseStateRoot(dir: string | undefined): void {
  chosen = dir;
  resolved = undefined;
}

/**
 * Where this user's containers' state is kept: the chosen root, checked
 * (with its parents) and its symlinks resolved, or the default one. Not
 * made: ensureStateRoot.
 */
export function stateRoot(uid: number = process.getuid?.() ?? 0, env: NodeJS.ProcessEnv = process.env, nested: () => boolean = inUserNamespace): string {
  if (chosen === undefined) return defaultStateRoot(uid, env, nested);
  const root = resolved?.uid === uid && resolved.complete ? resolved.path : trustedPlace(chosen, uid);
  // The root itself at every use: an empty one of an ordinary user's goes
  // with its last container, and anyone allowed above it may make it again.
  untrustedIfMade(root, uid, CHOSEN_HINT);
  return root;
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

const DEFAULT_HINT = 'set XDG_RUNTIME_DIR to a directory of your own, or remove it if you made it';
const CHOSEN_HINT = '--root must name a directory of your own that nobody else may write (such as one made with mode 0700), or one that does not exist yet, in directories only root or you can change';

/**
 * Throws when `root` exists and is not this user's own directory, not a
 * symlink, writable by nobody else (ensureStateRoot's rule); a missing one
 * is fine (whoever needs it makes it with ensureStateRoot).
 */
function untrustedIfMade(root: string, uid: number, hint = DEFAULT_HINT): void {
  let st;
  try {
    st = lstatSync(root);
  } catch {
    return;
  }
  checkOwn(root, st, uid, hint);
}

function checkOwn(root: string, st: { isDirectory(): boolean; uid: number; mode: number }, uid: number, hint = DEFAULT_HINT): void {
  if (!st.isDirectory()) throw new TsboxError({ step: 'state', errno: 20, path: root, detail: 'the state directory is not a directory (a symlink?)', hint });
  if (st.uid !== uid) throw new TsboxError({ step: 'state', errno: 1, path: root, detail: `the state directory belongs to uid ${st.uid}, not to this user (${uid})`, hint });
  if ((st.mode & 0o022) !== 0) throw new TsboxError({ step: 'state', errno: 1, path: root, detail: `the state directory is writable by others (mode ${(st.mode & 0o7777).toString(8)})`, hint });
}

/**
 * `dir` with its symlinks resolved, when every directory above it is one
 * that only root or this user can change: another user who may rename
 * what is in a parent may put a root of theirs, with their state.json, in
 * place of ours. A parent others may write is fine when it is sticky
 * (/tmp: they may not rename what is not theirs). In a user namespace an
 * ordinary user made (rootless podman), root's directories (/, /run) belong
 * to an id that is not mapped, and are taken for root's. What is missing
 * below is made 0700 by ensureStateRoot; until the whole path exists it is
 * checked again at each use.
 */
function trustedPlace(dir: string, uid: number): string {
  let existing = dir;
  const missing: string[] = [];
  for (;;) {
    try {
      existing = realpathSync(existing);
      break;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if ((code !== 'ENOENT' && code !== 'ENOTDIR') || dirname(existing) === existing) throw fromSystemError('state', err, `resolve the state directory ${dir}`, CHOSEN_HINT);
      missing.unshift(basename(existing));
      existing = dirname(existing);
    }
  }
  const path = join(existing, ...missing);
  const unmapped = inUserNamespace() ? overflowUid() : undefined;
  for (let d = missing.length > 0 ? existing : dirname(path); ; d = dirname(d)) {
    let st;
    try {
      st = lstatSync(d);
    } catch (err) {
      throw fromSystemError('state', err, `look at ${d}, above the state directory ${path}`, CHOSEN_HINT);
    }
    const why = !st.isDirectory()
      ? 'which is not a directory'
      : st.uid !== 0 && st.uid !== uid && st.uid !== unmapped
        ? `which belongs to uid ${st.uid}: they may replace what is in it`
        : (st.mode & 0o022) !== 0 && (st.mode & 0o1000) === 0
          ? `which others may write (mode ${(st.mode & 0o7777).toString(8)}): they may replace what is in it`
          : null;
    if (why !== null) throw new TsboxError({ step: 'state', errno: 1, path: d, detail: `the state directory ${path} is in ${d}, ${why}`, hint: CHOSEN_HINT });
    if (dirname(d) === d) break;
  }
  resolved = { uid, path, complete: missing.length === 0 };
  return path;
}

/** The id the kernel shows for an owner not mapped into this user namespace (/proc/sys/kernel/overflowuid). */
export function overflowUid(): number {
  if (overflow === undefined) {
    try {
      overflow = Number(readFileSync('/proc/sys/kernel/overflowuid', 'utf8').trim());
    } catch {
      overflow = 65534;
    }
  }
  return overflow;
}

/** The kernel's overflow id does not change under a process: read once. */
let overflow: number | undefined;

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
  let made = false;
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
    made = true;
  }
  const isChosen = chosen !== undefined && root === resolved?.path;
  checkOwn(root, st, uid, isChosen ? CHOSEN_HINT : DEFAULT_HINT);
  // A chosen root's parents that were missing are there now (made just
  // now, or by someone else meanwhile): checked as they are.
  if (isChosen && made) trustedPlace(chosen!, uid);
  return root;
}
