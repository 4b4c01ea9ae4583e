/**
 * `tsbox image export REF DIR`: an image as an OCI bundle — its layers
 * applied into DIR/rootfs (whiteouts and opaque directories as overlayfs
 * shows them, in Rust, through descriptors only) and DIR/config.json, a base
 * spec (tsbox's defaults) with the image's command, environment, working
 * directory and user.
 */
import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { join, resolve, sep } from 'node:path';

import { fromNativeReport, TsboxError } from '../errors.js';
import { loadNative } from '../native.js';
import { imageConfig, incompleteImage, lookupImage, missingLayers } from './run.js';
import type { ImageConfig } from './spec.js';
import { removeTree, Store } from './store.js';

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
 * Writes the image `ref` names as a bundle in `dir` (which must not exist, or
 * be empty; it is made 0700): `dir/rootfs` and `dir/config.json` from `baseSpec`.
 */
export async function exportImage(ref: string, dir: string, baseSpec: Record<string, unknown>, store: Store = new Store()): Promise<{ dir: string; entries: number }> {
  const record = lookupImage(store, ref);
  if (!record) throw new TsboxError({ step: 'image', errno: 2, path: ref, detail: 'no such image in the store', hint: `pull it first: tsbox pull ${ref}` });
  const missing = missingLayers(store, record);
  if (missing.length > 0) throw incompleteImage(ref, missing);
  const target = resolve(dir);
  if (existsSync(target) && (!lstatSync(target).isDirectory() || readdirSync(target).length > 0)) {
    throw fail(17, target, 'the bundle directory exists and is not empty', 'give a new directory');
  }
  const made = !existsSync(target);
  const rootfs = join(target, 'rootfs');
  try {
    // The rootfs keeps the image's owners, setuid-root files and device
    // nodes (as root): no other user may reach into it. The bundle
    // directory is 0700, whatever the umask or the mode an empty one had
    // (as umoci makes it); the rootfs itself stays 0755, as the container's
    // `/` must be for its root mapped into a user namespace.
    mkdirSync(target, { recursive: true, mode: 0o700 });
    chmodSync(target, 0o700);
    mkdirSync(rootfs, { mode: 0o755 });
    let entries: number;
    try {
      entries = await loadNative().binding.flattenLayers(record.layers.map((d) => store.layerDir(d)), rootfs);
    } catch (err) {
      throw fromNativeReport(err, 'image_export', rootfs);
    }
    const spec = bundleSpec(baseSpec, imageConfig(store, record).config ?? {}, rootfs);
    writeFileSync(join(target, 'config.json'), `${JSON.stringify(spec, null, '\t')}\n`, { mode: 0o644 });
    return { dir: target, entries };
  } catch (err) {
    // Nothing half-made stays: removed as the store removes a layer, which
    // opens the directories an ordinary user's rootfs keeps read-only (0555).
    // The failure reported is the export's, not a cleanup's.
    try {
      if (made) removeTree(target);
      else for (const e of readdirSync(target)) removeTree(join(target, e));
    } catch {
      // What could not be removed is the export's failure's to tell.
    }
    throw err;
  }
}
