/**
 * The image store: content-addressed blobs (`blobs/sha256/<hex>`: manifests,
 * indexes, configs), each layer unpacked once into its own directory
 * (`layers/sha256/<hex>/`, keyed by the digest its manifests name, with a
 * `<hex>.json` beside it written last, which marks it complete), and a small
 * index of names to manifests (`images.json`).
 *
 * Where: `$TSBOX_STORAGE`; else `/var/lib/tsbox` as root, `$XDG_DATA_HOME/tsbox`
 * (`~/.local/share/tsbox`) otherwise. The root is 0700: layers unpacked by
 * root keep their owners and setuid bits, which no other host user may reach.
 * A root that exists must be the caller's own and writable by nobody else:
 * whoever may rename its directories may put their own layers under the
 * digests an image names. A manifest or config read back is checked against
 * its digest.
 *
 * Every write is a temporary file or directory (under `tmp/`) renamed into
 * place; a lock file per digest (`locks/`) lets concurrent pulls of one blob
 * wait for each other instead of both writing it.
 */
import { chmodSync, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync, type Stats } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

import { fromSystemError, TsboxError } from '../errors.js';
import { processAlive } from '../runtime/state.js';
import { loadNative, type NativeFileLock } from '../native.js';
import type { PathOwner } from '../generated/addon.js';
import { isDigest } from './reference.js';
import type { ImageConfig } from './spec.js';

/** The store's root directory for this user. */
export function storageRoot(env: NodeJS.ProcessEnv = process.env, uid: number = process.getuid?.() ?? 0): string {
  if (env.TSBOX_STORAGE) return env.TSBOX_STORAGE;
  if (uid === 0) return '/var/lib/tsbox';
  return join(env.XDG_DATA_HOME || join(env.HOME || homedir(), '.local', 'share'), 'tsbox');
}

/** One image in the index. */
export interface ImageRecord {
  /** The full name: `docker.io/library/alpine:latest`, or `name@sha256:...` when pulled by digest. */
  name: string;
  /** The manifest's digest. */
  digest: string;
  /** The config's digest. */
  config: string;
  /** The layers' digests, bottom first, as the manifest lists them. */
  layers: string[];
  /** The index (manifest list) it was chosen from, when it came from one. */
  index?: string | undefined;
  /** When it was stored (ISO 8601). */
  created: string;
  /**
   * The config's `config` object (Entrypoint, Cmd, Env, User, WorkingDir,
   * StopSignal, ExposedPorts), copied by `tag` from the config blob it read
   * and checked against its digest: a launch takes it from here rather than
   * reading, hashing and parsing the blob (~0.15 ms of `tsbox run IMAGE`).
   * Absent from records written before it was kept; the blob is read then.
   */
  runConfig?: RunConfig | undefined;
}

/** A record as `tsbox images` and `image inspect` show it: its run config is the config's, shown there. */
export function shownRecord(record: ImageRecord): Omit<ImageRecord, 'runConfig'> {
  const { runConfig: _, ...shown } = record;
  return shown;
}

/** What a container takes from its image's config (the config's `config` object). */
export type RunConfig = NonNullable<ImageConfig['config']>;

/** What a layer's `<hex>.json` says. */
export interface LayerInfo {
  digest: string;
  diffId: string;
  /** Bytes of file data unpacked. */
  size: number;
  entries: number;
  notes: string[];
}

interface IndexFile {
  version: 1;
  images: ImageRecord[];
}

function hexOf(digest: string): string {
  if (!isDigest(digest)) throw new TsboxError({ step: 'store', errno: 22, path: digest, detail: 'not a sha256 digest', hint: null });
  return digest.slice('sha256:'.length);
}

export class Store {
  readonly root: string;

  constructor(root: string = storageRoot()) {
    this.root = root;
    // Made and checked once per process (tsbox run IMAGE opens it in the
    // CLI and again in the API).
    if (checkedRoots.has(root)) return;
    const uid = process.getuid?.() ?? 0;
    // The usual store exists already: its directories' lstats in one native
    // call (the first fs.lstatSync calls of a process cost ~0.3 ms of every
    // `tsbox run IMAGE`), a mkdir only for what is missing, root first.
    const paths = [root, ...STORE_DIRS.map((d) => join(root, d))];
    const known = lstatAll(paths);
    const meta = (i: number): PathOwner => known[i] ?? ownerOf(lstatOrMake(paths[i]!, 0o700));
    const st = meta(0);
    if (!st.isDirectory) throw new TsboxError({ step: 'store', errno: 20, path: root, detail: 'the image store is not a directory', hint: null });
    // The root must be this user's, and nobody else's to write: another
    // user who may rename what is in it may swap in layers of their own.
    if (st.uid !== uid) {
      throw new TsboxError({ step: 'store', errno: 1, path: root, detail: `the image store belongs to uid ${st.uid}, not to this user (${uid})`, hint: 'set TSBOX_STORAGE to a directory of your own' });
    }
    if ((st.mode & 0o022) !== 0) {
      throw new TsboxError({ step: 'store', errno: 1, path: root, detail: `the image store may be written by other users (mode ${st.mode.toString(8).padStart(4, '0')})`, hint: `chmod go-w ${root}, or set TSBOX_STORAGE to a directory only you may write` });
    }
    // Layers unpacked by root keep setuid-root files: whatever the root
    // directory's mode (a TSBOX_STORAGE that existed), no other user may
    // reach into them. The directories must be this user's own.
    STORE_DIRS.forEach((d, j) => {
      const p = paths[j + 1]!;
      const s = meta(j + 1);
      if (!s.isDirectory || s.uid !== uid) {
        throw new TsboxError({ step: 'store', errno: 1, path: p, detail: s.isDirectory ? `the directory belongs to uid ${s.uid}, not to this user (${uid})` : 'not a directory (a symlink?)', hint: 'set TSBOX_STORAGE to a directory of your own' });
      }
      if (!d.includes('/') && (s.mode & 0o077) !== 0) chmodSync(p, 0o700);
    });
    checkedRoots.add(root);
  }

  blobPath(digest: string): string {
    return join(this.root, 'blobs', 'sha256', hexOf(digest));
  }

  layerDir(digest: string): string {
    return join(this.root, 'layers', 'sha256', hexOf(digest));
  }

  hasBlob(digest: string): boolean {
    return existsSync(this.blobPath(digest));
  }

  /** A stored manifest, index or config, checked against its digest. */
  readBlob(digest: string): Buffer {
    let bytes: Buffer;
    try {
      bytes = readFileSync(this.blobPath(digest));
    } catch (err) {
      throw fromSystemError('store', err, `read the blob ${digest}`, 'the store is damaged: pull the image again');
    }
    // The addon's sha256: node:crypto (and the registry's http modules with
    // it) stay unloaded on an image's launch path.
    const got = loadNative().binding.sha256Digest(bytes);
    if (got !== digest) {
      throw new TsboxError({ step: 'verify', errno: 0, path: this.blobPath(digest), detail: `the stored blob's digest is ${got}, not ${digest}`, hint: 'the store is damaged or was changed: remove the image (tsbox rmi) and pull it again' });
    }
    return bytes;
  }

  /**
   * The `config` object of the config blob `digest` (checked against its
   * digest, not validated again: every config in the store was checked in
   * full by spec.ts's configSchema before it was written, by the pull or
   * the load that stored it, or made by `import`).
   */
  configOf(digest: string): RunConfig {
    return (JSON.parse(this.readBlob(digest).toString('utf8')) as ImageConfig).config ?? {};
  }

  /** A fresh path under `tmp/`, named for what it holds. */
  tempPath(tag: string): string {
    return join(this.root, 'tmp', `tsbox-${tag}-${process.pid}-${(++tempCount).toString(16)}${Date.now().toString(16)}`);
  }

  /**
   * Writes `contents` to `path` atomically: a temporary file of tmp/
   * renamed into place, removed when that fails. `what` names it in the error.
   */
  private writeAtomic(path: string, contents: string | Buffer, tag: string, what: string): void {
    const tmp = this.tempPath(tag);
    try {
      writeFileSync(tmp, contents, { mode: 0o600 });
      renameSync(tmp, path);
    } catch (err) {
      try {
        rmSync(tmp, { force: true });
      } catch {
        // Never made (tmp/ itself is what failed): the write's error is what to report.
      }
      throw fromSystemError('store', err, `write ${what}`, STORE_WRITE_HINT);
    }
  }

  /** Writes a blob atomically (a temporary file renamed into place). */
  writeBlob(digest: string, bytes: Buffer): void {
    this.writeAtomic(this.blobPath(digest), bytes, 'blob', `the blob ${digest}`);
  }

  /** Whether the layer is in the store, complete: its description (written last, by a rename) is there and reads. */
  hasLayer(digest: string): boolean {
    return this.layerInfo(digest) !== null;
  }

  /**
   * The layers of `digests` that are not complete in the store: those
   * without their description, which commitLayer renames into place last.
   * One native lstat for them all on a launch's path (hasLayer reads and
   * parses each description); hasLayer's reads without the addon's answer.
   */
  missingLayers(digests: readonly string[]): string[] {
    const found = lstatAll(digests.map((d) => `${this.layerDir(d)}.json`));
    if (found.length !== digests.length) return digests.filter((d) => !this.hasLayer(d));
    return digests.filter((_, i) => {
      const st = found[i];
      return !st || st.isDirectory;
    });
  }

  layerInfo(digest: string): LayerInfo | null {
    try {
      return JSON.parse(readFileSync(`${this.layerDir(digest)}.json`, 'utf8')) as LayerInfo;
    } catch {
      return null;
    }
  }

  /**
   * Moves an unpacked directory into place and then its description, which
   * marks it complete. On failure nothing of it is left: not `tmpDir`, not
   * a layer directory without its description.
   */
  commitLayer(tmpDir: string, info: LayerInfo): void {
    const dir = this.layerDir(info.digest);
    try {
      // A directory without its .json is a crashed earlier attempt's.
      removeTree(dir);
      try {
        renameSync(tmpDir, dir);
      } catch (err) {
        throw fromSystemError('store', err, `move the unpacked layer ${info.digest} into place`, STORE_WRITE_HINT);
      }
      this.writeAtomic(`${dir}.json`, `${JSON.stringify(info)}\n`, 'layer-json', `the description of the layer ${info.digest}`);
    } catch (err) {
      for (const left of [tmpDir, dir]) {
        try {
          removeTree(left);
        } catch {
          // The first failure is what to report; cleanTemp (prune) tries tmp/ again.
        }
      }
      throw err;
    }
  }

  /**
   * Stores layer `digest` once, whoever else pulls or loads it: `make` runs
   * under the layer's lock unless the layer is complete already, checked
   * before the lock and again once it is held (another process may have
   * stored it while this one waited). False when it was there.
   */
  async layerOnce(digest: string, make: () => Promise<void>): Promise<boolean> {
    if (this.layerInfo(digest)) return false;
    const lock = await this.lock(digest);
    try {
      if (this.layerInfo(digest)) return false;
      await make();
      return true;
    } finally {
      lock.release();
    }
  }

  /**
   * Takes the lock named `name` (a digest, or `index`), waiting for another
   * process (or another pull of this one) that holds it without blocking
   * the event loop.
   */
  async lock(name: string): Promise<NativeFileLock> {
    const path = join(this.root, 'locks', name.replace(':', '-'));
    const { binding } = loadNative();
    for (let wait = 10; ; wait = Math.min(wait * 2, 200)) {
      const held = binding.tryLockFile(path, `${process.pid}\n`);
      if (held) return held;
      await sleep(wait);
    }
  }

  /**
   * Marks a pull (or load) in progress until released: its layers are in the
   * store before its name is, and prune must not take them meanwhile.
   */
  working(): NativeFileLock {
    const path = join(this.root, 'locks', `pull-${process.pid}-${++tempCount}`);
    const held = loadNative().binding.tryLockFile(path, `${process.pid}\n`);
    if (!held) throw new TsboxError({ step: 'store', errno: 11, path, detail: 'the pull lock is taken', hint: null });
    return held;
  }

  /**
   * Held by a launch of an image from the moment its layers are resolved
   * until its state records them (launch releases it there): until then no
   * container names them, and a prune would take them from under it. A
   * shared lock, so launches never wait for each other; only a prune
   * (`pruning()`) holds it exclusively, and a launch waits for that.
   */
  async launching(): Promise<NativeFileLock> {
    const path = join(this.root, 'locks', 'store');
    const { binding } = loadNative();
    for (let wait = 10; ; wait = Math.min(wait * 2, 200)) {
      const held = binding.tryLockFileShared(path);
      if (held) return held;
      await sleep(wait);
    }
  }

  /**
   * The store's lock, exclusively: no launch is between resolving an
   * image's layers and recording them in its state while it is held (see
   * `launching()`). `onWait` is called once if it has to wait. Take it
   * before the index lock (a launch may pull, which takes that one).
   */
  async pruning(onWait?: () => void): Promise<NativeFileLock> {
    const path = join(this.root, 'locks', 'store');
    const { binding } = loadNative();
    for (let wait = 10; ; wait = Math.min(wait * 2, 200)) {
      const held = binding.tryLockFile(path, `${process.pid}\n`);
      if (held) return held;
      if (wait === 10) onWait?.();
      await sleep(wait);
    }
  }

  /** Whether a pull or load holds its `working()` lock now. */
  private pulling(): boolean {
    const dir = join(this.root, 'locks');
    return readdirSync(dir)
      .filter((n) => n.startsWith('pull-'))
      .some((n) => {
        const held = loadNative().binding.tryLockFile(join(dir, n), `${process.pid}\n`);
        if (!held) return true;
        held.release();
        return false;
      });
  }

  private readIndex(): IndexFile {
    try {
      const parsed = JSON.parse(readFileSync(join(this.root, 'images.json'), 'utf8')) as IndexFile;
      if (parsed?.version === 1 && Array.isArray(parsed.images)) return parsed;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw fromSystemError('store', err, `read the image index ${join(this.root, 'images.json')}`);
    }
    return { version: 1, images: [] };
  }

  /**
   * What identifies the index as it is now (its inode, size and change
   * time; every write replaces it by a rename): a record found under one
   * stamp is still the index's while the stamp is the same. Null when there
   * is no index. (Not a bigint stat: Node's first one costs a CLI start
   * ~0.15 ms; ctimeMs keeps the change time to a fraction of a microsecond.)
   */
  indexStamp(): string | null {
    try {
      const st = statSync(join(this.root, 'images.json'));
      return `${st.dev}:${st.ino}:${st.size}:${st.ctimeMs}`;
    } catch {
      return null;
    }
  }

  private writeIndex(index: IndexFile): void {
    this.writeAtomic(join(this.root, 'images.json'), `${JSON.stringify(index, null, 1)}\n`, 'index', `the image index ${join(this.root, 'images.json')}`);
  }

  images(): ImageRecord[] {
    return this.readIndex().images;
  }

  /**
   * The image named `name` (a full name, or a manifest digest or its first
   * 12+ hex digits). A prefix of more than one image's digest is refused,
   * as Docker refuses it, rather than taken as whichever is listed first:
   * `rmi` or `run` would act on an image the user did not mean. (Names of
   * one manifest are one image: any of them will do.)
   */
  find(name: string): ImageRecord | null {
    const all = this.images();
    const exact = all.find((i) => i.name === name);
    if (exact) return exact;
    const hex = name.replace(/^sha256:/, '');
    if (!/^[a-f0-9]{12,64}$/.test(hex)) return null;
    const matches = all.filter((i) => i.digest.slice(7).startsWith(hex));
    const digests = new Set(matches.map((i) => i.digest));
    if (digests.size > 1) {
      throw new TsboxError({ step: 'image', errno: 0, path: name, detail: `the digest prefix matches ${digests.size} images`, hint: 'give more digits of the digest (`tsbox images --format json` shows them whole), or the image\'s name' });
    }
    return matches[0] ?? null;
  }

  /**
   * Adds or replaces the record of `record.name`, under the index lock,
   * with its config's runConfig (its blob must be in the store).
   */
  async tag(record: ImageRecord): Promise<void> {
    const stored: ImageRecord = { ...record, runConfig: this.configOf(record.config) };
    const lock = await this.lock('index');
    try {
      const index = this.readIndex();
      index.images = [...index.images.filter((i) => i.name !== record.name), stored];
      this.writeIndex(index);
    } finally {
      lock.release();
    }
  }

  /** Removes the name; false when there was none. */
  async untag(name: string): Promise<boolean> {
    const lock = await this.lock('index');
    try {
      const index = this.readIndex();
      const left = index.images.filter((i) => i.name !== name);
      if (left.length === index.images.length) return false;
      this.writeIndex({ ...index, images: left });
      return true;
    } finally {
      lock.release();
    }
  }

  /** Bytes of the layers of `record` (as unpacked). */
  sizeOf(record: ImageRecord): number {
    return record.layers.reduce((n, d) => n + (this.layerInfo(d)?.size ?? 0), 0);
  }

  /**
   * Removes every layer and blob no image names, unless a pull or load is
   * in progress (its layers are stored before its name). `inUse`: layer
   * directories a container runs on, which stay. The caller holds
   * `pruning()` from before it computes `inUse` (a launch's layers are in
   * use before its state says so). Returns what was removed.
   */
  async prune(inUse: ReadonlySet<string> = new Set()): Promise<{ layers: string[]; blobs: string[] }> {
    const lock = await this.lock('index');
    const removed = { layers: [] as string[], blobs: [] as string[] };
    try {
      // A pull in progress has layers and blobs no image names yet: they stay, and so does the rest until it is done.
      if (this.pulling()) return removed;
      const images = this.readIndex().images;
      const keepLayers = new Set(images.flatMap((i) => i.layers));
      const keepBlobs = new Set(images.flatMap((i) => [i.digest, i.config, ...this.indexDigestsOf(i)]));
      const layersDir = join(this.root, 'layers', 'sha256');
      for (const entry of readdirSync(layersDir)) {
        const hex = entry.replace(/\.json$/, '');
        const digest = `sha256:${hex}`;
        if (!isDigest(digest) || keepLayers.has(digest) || inUse.has(this.layerDir(digest))) continue;
        // A pull of this layer holds its lock while it works.
        const held = loadNative().binding.tryLockFile(join(this.root, 'locks', `sha256-${hex}`), `${process.pid}\n`);
        if (!held) continue;
        try {
          removeTree(join(layersDir, entry));
          if (!entry.endsWith('.json')) removed.layers.push(digest);
        } finally {
          held.release();
        }
      }
      const blobsDir = join(this.root, 'blobs', 'sha256');
      for (const hex of readdirSync(blobsDir)) {
        const digest = `sha256:${hex}`;
        if (keepBlobs.has(digest)) continue;
        rmSync(join(blobsDir, hex), { force: true });
        removed.blobs.push(digest);
      }
    } finally {
      lock.release();
    }
    return removed;
  }

  /**
   * Removes what failed pulls left in tmp/: a partial download (kept for a
   * pull to resume) when no pull holds its layer's lock, anything else when
   * the process that made it is gone.
   */
  cleanTemp(): string[] {
    const dir = join(this.root, 'tmp');
    const removed: string[] = [];
    for (const entry of readdirSync(dir)) {
      const download = /^tsbox-download-([a-f0-9]{64})$/.exec(entry);
      if (download) {
        const held = loadNative().binding.tryLockFile(join(this.root, 'locks', `sha256-${download[1]}`), `${process.pid}\n`);
        if (!held) continue;
        held.release();
      } else {
        const pid = Number(/^tsbox-[a-z-]+-(\d+)-[a-f0-9]+$/.exec(entry)?.[1]);
        if (pid === process.pid || (Number.isInteger(pid) && pid > 0 && processAlive(pid))) continue;
      }
      removeTree(join(dir, entry));
      removed.push(entry);
    }
    return removed;
  }

  /** Where a layer's download is kept until it is unpacked (a pull that failed resumes from it). */
  downloadPath(digest: string): string {
    return join(this.root, 'tmp', `tsbox-download-${hexOf(digest)}`);
  }

  /** The index a record was chosen from (kept so that its digest stays resolvable). */
  private indexDigestsOf(record: ImageRecord): string[] {
    return record.index ? [record.index] : [];
  }
}

/**
 * Removes a directory tree. A layer unpacked by an ordinary user may hold
 * directories without write permission (0555, as the image has them), which
 * only root could empty as they are: they are made writable first.
 */
export function removeTree(path: string): void {
  try {
    rmSync(path, { recursive: true, force: true });
    return;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EACCES' && code !== 'EPERM') throw fromSystemError('store', err, `remove ${path}`);
  }
  const open = (dir: string) => {
    chmodSync(dir, 0o700);
    for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) open(join(dir, e.name));
  };
  try {
    open(path);
    rmSync(path, { recursive: true, force: true });
  } catch (err) {
    throw fromSystemError('store', err, `remove ${path}`);
  }
}

/** What to do when a write into the store fails. */
const STORE_WRITE_HINT = 'the image store\'s filesystem may be full or read-only: free space (tsbox image prune) or set TSBOX_STORAGE to another directory';

/** Store roots this process has made and checked (Store's constructor). */
const checkedRoots = new Set<string>();

/** The store's directories under its root (Store's constructor makes and checks them). */
const STORE_DIRS = ['blobs', 'blobs/sha256', 'layers', 'layers/sha256', 'tmp', 'locks'] as const;

/** `paths`' lstats from one native call, null where one failed (the caller's lstat says why); all null without the addon's answer. */
function lstatAll(paths: string[]): (PathOwner | null | undefined)[] {
  try {
    const got = loadNative().binding.lstatMany(paths);
    // One answer per path, or none is taken.
    if (got.length === paths.length) return got;
  } catch {
    // fs.lstatSync below, path by path.
  }
  return [];
}

/** What lstatMany says of a path, from fs's lstat. */
function ownerOf(s: Stats): PathOwner {
  return { uid: s.uid, mode: s.mode & 0o7777, isDirectory: s.isDirectory() };
}

/** Resolves after `ms` (node:timers/promises stays unloaded on a launch's path). */
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** `path`'s lstat, after making it (one level, `mode`) when it is missing. */
function lstatOrMake(path: string, mode: number): Stats {
  try {
    return lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw fromSystemError('store', err, `open the image store's directory ${path}`, 'set TSBOX_STORAGE to a directory you may write');
  }
  try {
    mkdirSync(path, { recursive: true, mode });
    return lstatSync(path);
  } catch (err) {
    throw fromSystemError('store', err, `create the image store ${path}`, 'set TSBOX_STORAGE to a directory you may write');
  }
}

/** Names made by this process are told apart by a count (and the time, across a pid's reuse). */
let tempCount = 0;

