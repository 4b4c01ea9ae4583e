/**
 * Containers' state directories, one per container, owned by this module:
 * `/run/tsbox/<id>/` as root, `$XDG_RUNTIME_DIR/tsbox/<id>/` otherwise (or
 * `/run/user/<uid>/tsbox`, or a private directory under the temporary
 * directory when neither exists). A container's directory holds its
 * `state.json`, its monitor's control socket, and a detached container's
 * log. Nothing in it is writable by a container: it is 0700, owned by the
 * caller, outside every container's root.
 */
import { closeSync, constants, fstatSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmdirSync, rmSync, statSync, unlinkSync, writeFileSync, type Stats } from 'node:fs';
import { basename, dirname, join } from 'node:path';

import { removeIfEmpty } from '../cgroups/gc.js';
import { fromSystemError, TsboxError } from '../errors.js';
import { processStart } from '../proc.js';
import { ensureStateRoot, stateRoot } from '../state-root.js';
import type { NetworkInfo } from '../network/bridge.js';

export { stateRoot } from '../state-root.js';

/**
 * The containers' state directories under `root` (none when it is
 * missing): directories only, never a symlink in their place (the type
 * readdir gives, no call more).
 */
function containerDirs(root: string): string[] {
  try {
    return readdirSync(root, { withFileTypes: true })
      .filter((e) => e.isDirectory() && /^[0-9a-f]{64}$/.test(e.name))
      .map((e) => join(root, e.name));
  } catch {
    return [];
  }
}

/**
 * Whether `dir` is a container's state directory as tsbox makes it: a
 * directory, not a symlink, this user's, writable by nobody else. What is
 * read from it (hooks to run, a log to print) and removed in it is taken
 * on that alone: a symlink in its place would lead both elsewhere.
 */
function ownContainerDir(dir: string): boolean {
  try {
    return isOwnDir(lstatSync(dir));
  } catch {
    return false;
  }
}

/** An lstat of a state directory that ownContainerDir takes. */
function isOwnDir(st: Stats): boolean {
  return st.isDirectory() && st.uid === (process.getuid?.() ?? 0) && (st.mode & 0o022) === 0;
}

/** The state directory of container `id`. */
export function containerDir(id: string): string {
  return join(stateRoot(), id);
}

/** Makes container `id`'s state directory (0700); refuses an id in use. */
export function createContainerDir(id: string): string {
  let dir = join(ensureStateRoot(), id);
  try {
    try {
      mkdirSync(dir, { mode: 0o700 });
    } catch (err) {
      // The root went, empty, with another container's end in between: once more.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      dir = join(ensureStateRoot(), id);
      mkdirSync(dir, { mode: 0o700 });
    }
  } catch (err) {
    throw fromSystemError('state', err, `create the container's state directory ${dir}`, (err as NodeJS.ErrnoException).code === 'EEXIST' ? 'container ids must be unique' : undefined);
  }
  return dir;
}

/** The files of a container's state directory. */
const CONTAINER_FILES = ['state.json', 'control.sock', 'container.log', 'container.log.1', 'config.json', 'hosts', 'refused.json', 'keeper.log'];

/** Removes container `id`'s state directory, and the root when it is empty. */
export function removeContainerDir(dir: string): void {
  // The names below are unlinked through it: never through a symlink, or
  // in a directory that is not ours (config.json, hosts: /etc's would go).
  let st;
  try {
    st = lstatSync(dir);
  } catch {
    st = null; // Gone already.
  }
  if (st && !isOwnDir(st)) {
    throw new TsboxError({
      step: 'state',
      errno: 1,
      path: dir,
      detail: st.isSymbolicLink() ? "the container's state directory is a symlink" : `the container's state directory is not a directory of this user's (uid ${st.uid}, mode ${(st.mode & 0o7777).toString(8)})`,
      hint: 'nothing in it was removed: remove it by hand once you know who made it',
    });
  }
  // What a state directory holds, by name: a few unlinks and an rmdir are
  // cheaper than a recursive removal's walk. Anything else (a temporary file
  // a writer left) makes rmdir fail, and the walk takes it.
  for (const name of CONTAINER_FILES) {
    try {
      unlinkSync(join(dir, name));
    } catch {
      // Not there: this container had none, or it went with the monitor.
    }
  }
  try {
    rmdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') rmSync(dir, { recursive: true, force: true });
  }
  const root = dirname(dir);
  // Root's /run/tsbox stays; an ordinary user's root may be in the temporary
  // directory, and goes when nothing is left in it (other containers' state,
  // their cgroup markers and id registrations keep it).
  if (process.getuid?.() !== 0) {
    removeIfEmpty(join(root, 'cgroups'));
    removeIfEmpty(join(root, 'ids'));
    removeIfEmpty(root);
  }
}

/**
 * `state.json`: the OCI runtime-spec state (ociVersion, id, status, pid,
 * bundle, annotations) and tsbox's own fields. Node writes it whole before
 * the launch (status `creating`); the container's monitor then sets `pid`,
 * `monitorPid` and `status` (`created`, `running`, `stopped`) and how it
 * ended (crates/tsbox-init/src/helper/state.rs). Every write is a rename.
 */
export interface ContainerState {
  ociVersion: string;
  id: string;
  status: 'creating' | 'created' | 'running' | 'stopped';
  pid: number;
  bundle: string;
  annotations: Record<string, string>;
  /** A name unique among the containers that have state, or null. */
  name: string | null;
  /** When the launch began (ISO 8601). */
  created: string;
  /** The monitor (tsbox-init). */
  monitorPid: number;
  /**
   * The monitor's start time (field 22 of /proc/PID/stat), written by the
   * monitor with its pid (crates/tsbox-init/src/helper/state.rs): a later
   * process with the same pid is not taken for it (monitorAlive). Absent
   * from an older tsbox's state, and until the monitor's first write.
   */
  monitorStart?: string;
  /** The caller's process: an attached container dies with it. */
  callerPid: number;
  detached: boolean;
  command: string[];
  /** The options the container was started with (the defaults of an exec). */
  options: Record<string, unknown>;
  /** A detached container's output. */
  log: string | null;
  /** Its network: mode, interfaces and addresses, published ports (ts/network). */
  network?: NetworkInfo | null;
  /**
   * An image's container: its lower layer directories, top first (its top
   * layer is `bundle`). Image prune keeps every layer a container's state
   * names, whether or not an image still does.
   */
  layers?: string[];
  exitCode?: number;
  exitSignal?: number | null;
  finishedAtMs?: number;
  error?: string;
  /** Made by `tsbox create` from an OCI bundle: its name is its OCI id. */
  oci?: boolean;
  /** An OCI bundle's hooks, run by `start` and `delete` (ts/oci/runtime.ts). */
  hooks?: Partial<Record<string, { path: string; args?: string[] | null; env?: string[] | null; timeout?: number | null }[]>>;
}

export const OCI_VERSION = '1.2.0';

/** Writes `state` as `<dir>/state.json`, atomically. */
export function writeState(dir: string, state: ContainerState): void {
  const path = join(dir, 'state.json');
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw fromSystemError('state', err, `write ${path}`);
  }
}

/**
 * The state of the container in `dir`, or null when it has none (being
 * made or removed), or when `dir` or its state.json is not what tsbox
 * makes (a symlink, another user's): not followed.
 */
export function readState(dir: string): ContainerState | null {
  if (!ownContainerDir(dir)) return null;
  let fd: number;
  try {
    fd = openSync(join(dir, 'state.json'), constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch {
    return null;
  }
  try {
    if (!fstatSync(fd).isFile()) return null;
    const s = JSON.parse(readFileSync(fd, 'utf8')) as ContainerState;
    return typeof s.id === 'string' ? s : null;
  } catch {
    return null;
  } finally {
    closeSync(fd);
  }
}

/**
 * Whether the monitor the state names is alive: its pid is a live process
 * and, when the state gives its start time, started then (a pid may be
 * another process's by the time it is read). Without one (an older tsbox's
 * state, or before the monitor's first write), the pid alone says.
 */
export function monitorAlive(s: Pick<ContainerState, 'monitorPid' | 'monitorStart'>): boolean {
  const start = s.monitorPid ? processStart(s.monitorPid) : null;
  if (start === null) return false;
  return typeof s.monitorStart !== 'string' || s.monitorStart === start;
}

/** True while process `pid` lives (not a zombie). */
export function processAlive(pid: number): boolean {
  if (!pid) return false;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) [ZX] /.test(stat);
  } catch {
    return false;
  }
}

/**
 * The state as it really is: a container whose monitor is gone is stopped
 * whatever its file says (the monitor killed it, or died and took it along).
 */
export function liveState(s: ContainerState): ContainerState {
  if (s.status !== 'stopped' && s.monitorPid && !monitorAlive(s)) return { ...s, status: 'stopped', exitCode: s.exitCode ?? 137, error: s.error ?? 'its monitor is gone' };
  return s;
}

/**
 * A detached container's egress allowlist reports what it refused through
 * its keeper (ts/network/keeper.ts), into `refused.json` beside its state:
 * shown as its network's `refused`, as an attached run's result has it.
 */
export function withRefused(dir: string, s: ContainerState): ContainerState {
  if (!s.detached || !s.network?.allow?.length) return s;
  let refused: unknown;
  try {
    refused = JSON.parse(readFileSync(join(dir, 'refused.json'), 'utf8'));
  } catch {
    return s;
  }
  const r = refused as { total?: unknown; destinations?: unknown };
  if (typeof r.total !== 'number' || !Array.isArray(r.destinations)) return s;
  return { ...s, network: { ...s.network, refused: refused as NonNullable<NetworkInfo['refused']> } };
}

/** Every container of this user that has state, newest first. */
export function listStates(root: string = stateRoot()): { dir: string; state: ContainerState }[] {
  const out: { dir: string; state: ContainerState }[] = [];
  for (const dir of containerDirs(root)) {
    const state = readState(dir);
    if (state) out.push({ dir, state: withRefused(dir, liveState(state)) });
  }
  return out.sort((a, b) => b.state.created.localeCompare(a.state.created));
}

/** The container a user means by `ref`: its name, its id, or a unique prefix of its id. */
export function findContainer(ref: string, root: string = stateRoot()): { dir: string; state: ContainerState } {
  const all = listStates(root);
  const byName = all.find((c) => c.state.name === ref);
  if (byName) return byName;
  const byId = all.filter((c) => c.state.id.startsWith(ref));
  if (byId.length === 1 && ref.length > 0) return byId[0]!;
  if (byId.length > 1) {
    throw new TsboxError({ step: 'state', errno: 22, path: ref, detail: `the id prefix matches ${byId.length} containers`, hint: 'give more of the id, or the name' });
  }
  throw new TsboxError({ step: 'state', errno: 2, path: ref, detail: 'no such container', hint: '`tsbox ps -a` lists the containers' });
}

/** The container `tsbox create` made with OCI id `id` (its name, exactly); undefined when there is none. */
export function findOciState(id: string, root: string = stateRoot()): { dir: string; state: ContainerState } | undefined {
  return listStates(root).find((c) => c.state.name === id && c.state.oci === true);
}

/** Refuses a name another container with state has (a name is unique until `tsbox rm`). */
export function checkName(name: string, root: string = stateRoot(), oci = false): void {
  if (oci) {
    // runc's rule for a container id: podman's are 64 hex digits, which
    // OCI commands look up by exact name only.
    if (!/^[\w+.-]{1,1024}$/.test(name) || name === '.' || name === '..') {
      throw new TsboxError({ step: 'config', errno: 0, path: 'ID', detail: `"${name}" is not a container id`, hint: 'use letters, digits, _, +, . and -' });
    }
  } else if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/.test(name)) {
    throw new TsboxError({ step: 'config', errno: 0, path: 'name', detail: `"${name}" is not a container name`, hint: 'use letters, digits, _, . and -, starting with a letter or digit' });
  }
  if (!oci && /^[0-9a-f]{64}$/.test(name)) {
    throw new TsboxError({ step: 'config', errno: 0, path: 'name', detail: 'a name cannot look like a container id', hint: 'choose another name' });
  }
  const other = listStates(root).find((c) => c.state.name === name);
  if (other) {
    throw new TsboxError({
      step: 'config',
      errno: 17,
      path: 'name',
      detail: `the name "${name}" is in use by container ${other.state.id.slice(0, 12)} (${other.state.status})`,
      hint: `remove it first (tsbox rm ${other.state.status === 'stopped' ? '' : '-f '}${name}), or choose another name`,
    });
  }
}

/** Whether the container in `dir` is gone and its state is left for gc. */
function orphaned(dir: string): boolean {
  const s = readState(dir);
  if (s === null) {
    // Being made right now, or left by a crash between mkdir and write.
    try {
      return Date.now() - statSync(dir).mtimeMs > 60_000;
    } catch {
      return false;
    }
  }
  if (s.status === 'stopped' && s.detached) return false;
  if (monitorAlive(s)) return false;
  // A detached container that ended keeps its state until `tsbox rm`; an
  // attached one's is its caller's to remove, unless that is gone too.
  if (s.status === 'stopped') return !processAlive(s.callerPid);
  // Its monitor died (killed, or crashed), or never came (a launch that is
  // still going on keeps its state).
  return !(s.status === 'creating' && processAlive(s.callerPid));
}

/**
 * Removes the state of containers that nobody keeps any more: a monitor that
 * is gone (killed, or crashed) while the container was not stopped, and an
 * attached container whose caller is gone too. A detached container that
 * stopped normally keeps its state until `tsbox rm`. Their cgroups are the
 * cgroup gc's (ts/cgroups/gc.ts). Returns the ids removed.
 */
export function gcStates(root: string = stateRoot()): string[] {
  const removed: string[] = [];
  for (const dir of containerDirs(root)) {
    // Read twice: a launch that ended after the first read (its creator
    // gone) has written its monitor into the state before it did.
    if (orphaned(dir) && orphaned(dir)) {
      rmSync(dir, { recursive: true, force: true });
      removed.push(basename(dir));
    }
  }
  return removed;
}
