/**
 * `tsbox image export REF DIR`: an image as an OCI bundle — its layers
 * applied into DIR/rootfs (whiteouts and opaque directories as overlayfs
 * shows them, in Rust, through descriptors only) and DIR/config.json, a base
 * spec (tsbox's defaults) with the image's command, environment, working
 * directory and user.
 */
import { closeSync, constants, fchmodSync, fstatSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, realpathSync, rmdirSync, statSync, writeFileSync, type Stats } from 'node:fs';
import { dirname, join, resolve, sep } from 'node:path';

import { fromNativeReport, fromSystemError, TsboxError } from '../errors.js';
import { loadNative } from '../native.js';
import { incompleteImage, lookupImage, runConfig } from './run.js';
import type { ImageConfig } from './spec.js';
import { removeTree, Store } from './store.js';
import { inUserNamespace, overflowUid } from '../state-root.js';

const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

function fail(errno: number, path: string, detail: string, hint: string | null = null): TsboxError {
  return new TsboxError({ step: 'image_export', errno, path, detail, hint });
}

/** `uid[:gid]` or `name[:group]`, names looked up in the exported rootfs's /etc/passwd and /etc/group. */
export function resolveUser(user: string, rootfs: string): { uid: number; gid: number } {
  const [u, g] = user.split(':', 2) as [string, string | undefined];
  const table = (file: string): string[][] => {
    const path = join(rootfs, 'etc', file);
    try {
      // A symlink in the image (etc/passwd -> /etc/passwd) must not read the host's.
      const real = realpathSync(path);
      if (!real.startsWith(realpathSync(rootfs) + sep) || !lstatSync(real).isFile()) return [];
      return readFileSync(real, 'utf8').split('\n').map((l) => l.split(':'));
    } catch {
      return [];
    }
  };
  let uid: number;
  let gid: number | undefined;
  if (/^\d+$/.test(u)) uid = Number(u);
  else {
    const row = table('passwd').find((r) => r[0] === u);
    if (!row || !/^\d+$/.test(row[2] ?? '') || !/^\d+$/.test(row[3] ?? '')) throw fail(2, user, `the image's user "${u}" is not in its /etc/passwd`);
    uid = Number(row[2]);
    gid = Number(row[3]);
  }
  if (g !== undefined && g !== '') {
    if (/^\d+$/.test(g)) gid = Number(g);
    else {
      const row = table('group').find((r) => r[0] === g);
      if (!row || !/^\d+$/.test(row[2] ?? '')) throw fail(2, user, `the image's group "${g}" is not in its /etc/group`);
      gid = Number(row[2]);
    }
  }
  return { uid, gid: gid ?? (/^\d+$/.test(u) ? uid : 0) };
}

/** `base` (an OCI spec) with the image config's process: args, env, cwd, user. */
export function bundleSpec(base: Record<string, unknown>, config: NonNullable<ImageConfig['config']>, rootfs: string): Record<string, unknown> {
  const args = [...(config.Entrypoint ?? []), ...(config.Cmd ?? [])];
  const env = [...(config.Env ?? [])];
  if (!env.some((e) => e.startsWith('PATH='))) env.unshift(DEFAULT_PATH);
  const process = base.process as Record<string, unknown>;
  return {
    ...base,
    process: {
      ...process,
      terminal: false,
      ...(args.length > 0 ? { args } : {}),
      env,
      cwd: config.WorkingDir || '/',
      user: config.User ? resolveUser(config.User, rootfs) : { uid: 0, gid: 0 },
    },
    root: { path: 'rootfs', readonly: false },
  };
}

/**
 * Writes the image `ref` names as a bundle in `dir`: `dir/rootfs` and
 * `dir/config.json` from `baseSpec`. `dir` must not exist, or be an empty
 * directory of the caller's; it is made 0700.
 *
 * The bundle holds the image's setuid-root files and device nodes, and root
 * writes it: a path another user can change must not lead those writes
 * elsewhere. So, as root, a `dir` that must be made is made only where
 * every directory above it is root's and writable by no one else (unless
 * sticky, as /tmp is; checkAncestors).
 * `dir` is opened once, without following a symlink, checked to be the
 * caller's and empty before and after it is made private, and everything
 * after goes through that descriptor (`/proc/self/fd/N/...`, each new name
 * made exclusively), never through `dir` again.
 */
export async function exportImage(ref: string, dir: string, baseSpec: Record<string, unknown>, store: Store = new Store()): Promise<{ dir: string; entries: number }> {
  const record = lookupImage(store, ref);
  if (!record) throw new TsboxError({ step: 'image', errno: 2, path: ref, detail: 'no such image in the store', hint: `pull it first: tsbox pull ${ref}` });
  const missing = store.missingLayers(record.layers);
  if (missing.length > 0) throw incompleteImage(ref, missing);
  const target = resolve(dir);
  const parent = dirname(target);
  const uid = process.geteuid?.() ?? 0;
  let made = false;
  // The first of the parents this export made, if it made any: they go with the bundle directory on a failure.
  let parentsFrom: string | undefined;
  if (!exists(target)) {
    // Made by path: as root, only where no other user could lead the
    // mkdirs elsewhere (checked before, and again once the parents exist).
    // A directory that exists is only ever opened, below.
    if (uid === 0) checkAncestors(parent);
    parentsFrom = mkdirSync(parent, { recursive: true, mode: 0o755 });
    if (uid === 0) checkAncestors(parent);
    try {
      mkdirSync(target, { mode: 0o700 });
      made = true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        removeParents(parent, parentsFrom);
        throw fromSystemError('image_export', err, `make the bundle directory ${target}`);
      }
    }
  }
  let fd: number;
  try {
    fd = openSync(target, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    removeParents(parent, parentsFrom);
    throw code === 'ELOOP' || code === 'ENOTDIR' ? fail(17, target, 'the bundle directory exists and is not a directory (a symlink is not followed)', 'give a new directory') : fromSystemError('image_export', err, `open the bundle directory ${target}`);
  }
  const here = `/proc/self/fd/${fd}`;
  try {
    const st = fstatSync(fd);
    if (st.uid !== uid) throw fail(1, target, `the bundle directory exists and belongs to uid ${st.uid}, not to this user (${uid})`, 'give a new directory, or one of your own');
    const empty = () => {
      if (readdirSync(here).length > 0) throw fail(17, target, 'the bundle directory exists and is not empty', 'give a new directory');
    };
    // Refused untouched when it has something in it; private, then checked
    // again: nothing can be added after that.
    empty();
    fchmodSync(fd, 0o700);
    empty();
  } catch (err) {
    if (made) removeMade(target, fd);
    closeSync(fd);
    removeParents(parent, parentsFrom);
    throw err;
  }
  try {
    // The rootfs keeps the image's owners, setuid-root files and device
    // nodes (as root): no other user may reach into it. The bundle
    // directory is 0700 (as umoci makes it); the rootfs itself stays 0755,
    // as the container's `/` must be for its root mapped into a user namespace.
    const rootfs = join(here, 'rootfs');
    inBundle(target, 'rootfs', () => mkdirSync(rootfs, { mode: 0o755 }));
    let entries: number;
    try {
      entries = await loadNative().binding.flattenLayers(record.layers.map((d) => store.layerDir(d)), rootfs);
    } catch (err) {
      throw fromNativeReport(err, 'image_export', join(target, 'rootfs'));
    }
    const spec = bundleSpec(baseSpec, runConfig(store, record), rootfs);
    inBundle(target, 'config.json', () => writeFileSync(join(here, 'config.json'), `${JSON.stringify(spec, null, '\t')}\n`, { mode: 0o644, flag: 'wx' }));
    return { dir: target, entries };
  } catch (err) {
    // Nothing half-made stays: removed as the store removes a layer, which
    // opens the directories an ordinary user's rootfs keeps read-only (0555),
    // inside the directory this export opened. The failure reported is the
    // export's, not a cleanup's.
    try {
      for (const e of readdirSync(here)) removeTree(join(here, e));
      if (made) removeMade(target, fd);
      removeParents(parent, parentsFrom);
    } catch {
      // What could not be removed is the export's failure's to tell.
    }
    throw err;
  } finally {
    closeSync(fd);
  }
}

/**
 * Refuses (for root) a bundle under a directory another user could change:
 * rename or replace the bundle's directory, or one on its way to it, and so
 * lead root's writes of setuid-root files and device nodes elsewhere. Each
 * directory on the path as given and on its real path, up to `/`, must be
 * root's and writable by no one else unless sticky (as /tmp is), and each
 * symlink on the way root's. The part of `path` that does not exist yet is
 * not looked at: root makes it.
 */
function checkAncestors(path: string): void {
  const refuse = (at: string, why: string) => fail(1, at, `the bundle would be written under ${why}: another user could move it elsewhere`, "export into a directory only root can change");
  // In a user namespace (podman unshare), root's own directories belong to an unmapped id.
  const unmapped = inUserNamespace() ? overflowUid() : 0;
  const check = (at: string, st: Stats) => {
    if (st.uid !== 0 && st.uid !== unmapped) throw refuse(at, `${st.isSymbolicLink() ? 'a symlink' : 'a directory'} that belongs to uid ${st.uid}`);
    if (!st.isSymbolicLink() && (st.mode & 0o022) !== 0 && (st.mode & 0o1000) === 0) throw refuse(at, `a directory writable by others (mode ${(st.mode & 0o7777).toString(8)})`);
  };
  let at = '/';
  let deepest = '/';
  for (const part of ['', ...path.split('/').filter(Boolean)]) {
    at = join(at, part);
    let st: Stats;
    try {
      st = lstatSync(at);
    } catch {
      break;
    }
    check(at, st);
    deepest = at;
  }
  for (let real = realpathSync(deepest); ; real = dirname(real)) {
    check(real, statSync(real));
    if (dirname(real) === real) return;
  }
}

/** `make` (which makes `name` in the bundle through its descriptor), its failure named by the bundle's path. */
function inBundle(target: string, name: string, make: () => void): void {
  try {
    make();
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw fail(typeof e.errno === 'number' ? Math.abs(e.errno) : 0, join(target, name), `could not make it (${e.code ?? e.message})`);
  }
}

/** Whether `path` exists (a dangling symlink too: it is refused when opened, not made through). */
function exists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Removes the bundle directory this export made, when `target` still is the directory `fd` holds. */
function removeMade(target: string, fd: number): void {
  try {
    const now = lstatSync(target);
    const ours = fstatSync(fd);
    if (now.isDirectory() && now.dev === ours.dev && now.ino === ours.ino) rmdirSync(target);
  } catch {
    // Gone already, or not empty: left.
  }
}

/** Removes the parents of the bundle directory this export made (`from`: the first of them), deepest first, each only if empty. */
function removeParents(parent: string, from: string | undefined): void {
  if (from === undefined) return;
  for (let d = parent; d.length >= from.length; d = dirname(d)) {
    try {
      rmdirSync(d);
    } catch {
      return; // Not empty (or gone): what is above it stays too.
    }
  }
}
