/**
 * Images from files: `tsbox load` reads a `docker save` archive
 * (docker-archive: manifest.json, a config and layer tars) or an OCI image
 * layout (a directory, or a tar of one); `tsbox import` makes a one-layer
 * image of a root filesystem tarball. An archive is hostile input like a
 * registry's: it is unpacked by the same safe unpacker, every name it gives is
 * looked up inside it only, every document is validated, and every blob's
 * digest is checked.
 *
 * A directory (or an imported tarball) may be changed by someone else while
 * it is read: every file is opened once (never through a symlink at its last
 * component, a regular file only, still inside the archive once open), and
 * what is checked against a digest is what is used — a document's bytes in
 * memory, a layer's copy under the store's tmp/, hashed as it is copied.
 */
import { closeSync, constants, fstatSync, lstatSync, mkdirSync, openSync, readlinkSync, readSync, realpathSync, rmSync, writeSync } from 'node:fs';
import { join, sep } from 'node:path';

import { nativeReport, printable, TsboxError } from '../errors.js';
import { loadNative } from '../native.js';
import { layerOnce, unpackInto, type PullProgress } from './pull.js';
import { formatReference, isDigest, parseReference } from './reference.js';
import { sha256 } from './registry.js';
import { checkLayerCount, checkManifestTypes, choosePlatform, configSchema, documentKind, hostPlatform, indexSchema, manifestSchema, MAX_DOCUMENT, MAX_LAYER_BYTES, MEDIA, parseDocument } from './spec.js';
import { removeTree, Store, type ImageRecord } from './store.js';

export interface LoadOptions {
  store?: Store | undefined;
  onProgress?: ((p: PullProgress) => void) | undefined;
}

function bad(path: string, detail: string, hint: string | null = null): TsboxError {
  return new TsboxError({ step: 'load', errno: 0, path, detail, hint });
}

/**
 * Opens the regular file `name` inside `dir`, never outside it: no absolute
 * name, no `..`; a symlink in the archive is followed only to a file inside
 * it, the last component is opened with O_NOFOLLOW, and the open file must
 * still be a regular file inside the archive (whatever was swapped meanwhile).
 */
function openInside(dir: string, name: string, what: string): number {
  const shownName = printable(name);
  if (name.startsWith('/') || name.split('/').includes('..') || name.includes('\0')) throw bad(shownName, `the archive names its ${what} outside itself`, 'the archive is refused');
  const root = realpathSync(dir);
  let real: string;
  try {
    real = realpathSync(join(dir, name));
  } catch {
    throw bad(shownName, `the archive has no ${what} ${shownName}`, 'the archive is incomplete');
  }
  const refused = () => bad(shownName, `the archive's ${what} is not a file inside it`, 'the archive is refused');
  if (!real.startsWith(root + sep)) throw refused();
  let fd: number;
  try {
    // O_NONBLOCK: a FIFO put there meanwhile does not hang the open.
    fd = openSync(real, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    throw refused();
  }
  try {
    if (!fstatSync(fd).isFile() || !readlinkSync(`/proc/self/fd/${fd}`).startsWith(root + sep)) throw refused();
  } catch (err) {
    closeSync(fd);
    throw err instanceof TsboxError ? err : refused();
  }
  return fd;
}

/** Reads all of `fd` (at most `max` bytes, else refused) and closes it. */
function readAll(fd: number, max: number, name: string, what: string): Buffer {
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for (;;) {
      const b = Buffer.allocUnsafe(Math.min(1 << 20, max + 1 - total));
      const n = readSync(fd, b, 0, b.length, null);
      if (n === 0) break;
      chunks.push(b.subarray(0, n));
      total += n;
      if (total > max) throw bad(printable(name), `the ${what} is larger than ${max} bytes`);
    }
  } finally {
    closeSync(fd);
  }
  return Buffer.concat(chunks);
}

/** A document of the archive (a manifest, an index, a config), read once: the bytes checked are the bytes parsed. */
function readDocument(dir: string, name: string, what: string): Buffer {
  return readAll(openInside(dir, name, what), MAX_DOCUMENT, name, what);
}

/** A layer file, copied once into the store's tmp/ while hashed: the copy is what is unpacked. */
interface LayerCopy {
  path: string;
  digest: string;
  size: number;
  mediaType: string;
}

/** Copies the open file `fd` (closed after) into the store's tmp/, hashing it. */
function copyLayer(store: Store, fd: number): LayerCopy {
  const path = store.tempPath('load-layer');
  const h = sha256();
  let size = 0;
  let head = Buffer.alloc(0);
  try {
    const out = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    try {
      const b = Buffer.allocUnsafe(1 << 20);
      for (let n; (n = readSync(fd, b, 0, b.length, null)) > 0; ) {
        const chunk = b.subarray(0, n);
        size += n;
        if (size > MAX_LAYER_BYTES) {
          throw new TsboxError({ step: 'load', errno: 27, path, detail: `the layer is larger than ${MAX_LAYER_BYTES} bytes`, hint: 'a layer this large is refused, as a likely bomb' });
        }
        h.update(chunk);
        if (head.length < 4) head = Buffer.concat([head, chunk.subarray(0, 4 - head.length)]);
        for (let off = 0; off < n; ) off += writeSync(out, chunk, off, n - off);
      }
    } finally {
      closeSync(out);
    }
  } catch (err) {
    rmSync(path, { force: true });
    throw err instanceof TsboxError ? err : new TsboxError({ step: 'load', errno: Math.abs((err as NodeJS.ErrnoException).errno ?? 0), path, detail: `copy the layer into the store: ${(err as Error).message}`, hint: null }, { cause: err });
  } finally {
    closeSync(fd);
  }
  return { path, digest: `sha256:${h.digest('hex')}`, size, mediaType: layerMediaType(head) };
}

/** The media type of a layer, from its first bytes. */
function layerMediaType(b: Buffer): string {
  if (b[0] === 0x1f && b[1] === 0x8b) return 'application/vnd.oci.image.layer.v1.tar+gzip';
  if (b.length >= 4 && b.readUInt32LE(0) === 0xfd2fb528) return 'application/vnd.oci.image.layer.v1.tar+zstd';
  return 'application/vnd.oci.image.layer.v1.tar';
}

/**
 * Stores one layer from its copy (its digest checked when the archive gives
 * one) and unpacks it once; its diff_id is checked against the config's
 * whether it was unpacked now or was in the store. The copy is removed
 * either way.
 */
async function storeLayer(store: Store, copy: LayerCopy, expected: string | null, diffId: string | null, onProgress: LoadOptions['onProgress']): Promise<string> {
  try {
    return await storeCopy(store, copy, expected, diffId, onProgress);
  } finally {
    rmSync(copy.path, { force: true });
  }
}

async function storeCopy(store: Store, copy: LayerCopy, expected: string | null, diffId: string | null, onProgress: LoadOptions['onProgress']): Promise<string> {
  const { digest, size: total, path: file } = copy;
  if (expected !== null && digest !== expected) {
    throw new TsboxError({ step: 'verify', errno: 0, path: expected, detail: `the layer's digest is ${digest}, not ${expected}`, hint: 'the archive is damaged: it is refused' });
  }
  const made = await layerOnce(store, digest, diffId, async () => {
    onProgress?.({ digest, phase: 'unpack', bytes: total, total });
    const info = await unpackInto(store, file, digest, diffId);
    onProgress?.({ digest, phase: 'done', bytes: total, total, message: info.notes.join('; ') || undefined });
  });
  if (!made) onProgress?.({ digest, phase: 'exists', bytes: total, total });
  return digest;
}

/** Writes an OCI manifest for a config and its layers (an archive without one) into the store. */
function synthesize(store: Store, configBytes: Buffer, layers: { digest: string; mediaType: string; size: number }[]): { digest: string; bytes: Buffer } {
  const configDigest = `sha256:${sha256().update(configBytes).digest('hex')}`;
  store.writeBlob(configDigest, configBytes);
  const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.ociManifest, config: { mediaType: MEDIA.ociConfig, digest: configDigest, size: configBytes.length }, layers }));
  return { digest: `sha256:${sha256().update(bytes).digest('hex')}`, bytes };
}

/** The store's name for an image an archive calls `name` (Docker's short names apply). */
function nameOf(name: string, where: string): string {
  try {
    return formatReference(parseReference(name));
  } catch (err) {
    throw err instanceof TsboxError ? new TsboxError({ step: 'load', errno: 0, path: where, detail: `the archive names its image "${printable(name)}": ${printable(err.message)}`, hint: null }) : err;
  }
}

/** Loads every image of a docker-archive or an OCI layout (a directory or a tar); resolves with their records. */
export async function loadArchive(path: string, options: LoadOptions = {}): Promise<ImageRecord[]> {
  const store = options.store ?? new Store();
  const working = store.working();
  try {
    return await loadFrom(store, path, options);
  } finally {
    working.release();
  }
}

async function loadFrom(store: Store, path: string, options: LoadOptions): Promise<ImageRecord[]> {
  let st;
  try {
    st = lstatSync(path);
  } catch (err) {
    throw new TsboxError({ step: 'load', errno: Math.abs((err as NodeJS.ErrnoException).errno ?? 2), path, detail: 'cannot read the archive', hint: 'give a docker save archive, or an OCI image layout (a directory or a tar)' }, { cause: err });
  }
  if (st.isDirectory()) return loadDirectory(store, path, path, options);
  // A tar: unpacked (safely, bounded) into a temporary directory first.
  const tmp = store.tempPath('load');
  mkdirSync(tmp, { mode: 0o700 });
  try {
    try {
      await loadNative().binding.unpackLayer(path, tmp, 256 * 2 ** 30, 1_000_000);
    } catch (err) {
      const r = nativeReport(err, path);
      throw new TsboxError({ step: 'load', ...r, detail: `the archive cannot be read: ${r.detail}`, hint: r.hint ?? 'give a docker save archive, or an OCI image layout (a directory or a tar)' }, { cause: err });
    }
    return await loadDirectory(store, tmp, path, options);
  } finally {
    removeTree(tmp);
  }
}

async function loadDirectory(store: Store, dir: string, shown: string, options: LoadOptions): Promise<ImageRecord[]> {
  let hasLayout = false;
  let hasManifest = false;
  try {
    hasLayout = lstatSync(join(dir, 'oci-layout')).isFile();
  } catch {
    // Not an OCI layout.
  }
  try {
    hasManifest = lstatSync(join(dir, 'manifest.json')).isFile();
  } catch {
    // Not a docker-archive.
  }
  if (hasLayout) return loadLayout(store, dir, shown, options);
  if (hasManifest) return loadDockerArchive(store, dir, shown, options);
  throw bad(shown, 'neither a docker save archive (manifest.json) nor an OCI image layout (oci-layout)', 'make one with docker save, podman save or skopeo copy ... docker-archive:FILE or oci:DIR');
}

interface DockerArchiveEntry {
  Config?: unknown;
  RepoTags?: unknown;
  Layers?: unknown;
}

async function loadDockerArchive(store: Store, dir: string, shown: string, options: LoadOptions): Promise<ImageRecord[]> {
  let entries: DockerArchiveEntry[];
  try {
    entries = JSON.parse(readDocument(dir, 'manifest.json', 'manifest').toString('utf8')) as DockerArchiveEntry[];
  } catch (err) {
    if (err instanceof TsboxError) throw err;
    throw bad(shown, `manifest.json is not JSON (${(err as Error).message})`);
  }
  if (!Array.isArray(entries) || entries.length === 0 || entries.length > 1000) throw bad(shown, 'manifest.json lists no images');
  const records: ImageRecord[] = [];
  for (const e of entries) {
    if (typeof e?.Config !== 'string' || !Array.isArray(e.Layers) || !e.Layers.every((l): l is string => typeof l === 'string')) throw bad(shown, 'an entry of manifest.json has no Config or Layers');
    checkLayerCount(e.Layers.length, shown);
    const configBytes = readDocument(dir, e.Config, 'config');
    const config = parseDocument(configSchema, configBytes, 'image config', shown);
    if (config.rootfs.diff_ids.length !== e.Layers.length) throw bad(shown, `the config has ${config.rootfs.diff_ids.length} diff_ids for ${e.Layers.length} layers`);
    const layers: { digest: string; mediaType: string; size: number }[] = [];
    for (const [i, name] of e.Layers.entries()) {
      const copy = copyLayer(store, openInside(dir, name, 'layer'));
      // The archive may name a layer by its digest (blobs/sha256/<hex>): it must be that.
      const hex = /(?:^|\/)sha256\/([a-f0-9]{64})$/.exec(name)?.[1];
      const digest = await storeLayer(store, copy, hex ? `sha256:${hex}` : null, config.rootfs.diff_ids[i]!, options.onProgress);
      layers.push({ digest, mediaType: copy.mediaType, size: copy.size });
    }
    const manifest = synthesize(store, configBytes, layers);
    store.writeBlob(manifest.digest, manifest.bytes);
    const tags = Array.isArray(e.RepoTags) ? e.RepoTags.filter((t): t is string => typeof t === 'string') : [];
    const names = tags.length > 0 ? tags.map((t) => nameOf(t, shown)) : [`sha256:${manifest.digest.slice(7)}`];
    for (const name of names) {
      const record: ImageRecord = { name, digest: manifest.digest, config: `sha256:${sha256().update(configBytes).digest('hex')}`, layers: layers.map((l) => l.digest), created: new Date().toISOString() };
      await store.tag(record);
      records.push(record);
    }
  }
  return records;
}

async function loadLayout(store: Store, dir: string, shown: string, options: LoadOptions): Promise<ImageRecord[]> {
  const name = (digest: string, what: string): string => {
    if (!isDigest(digest)) throw bad(shown, `the ${what}'s digest ${digest} is not sha256`);
    return `blobs/sha256/${digest.slice(7)}`;
  };
  /** A document blob, read once and checked: the bytes returned are the bytes hashed. */
  const document = (digest: string, what: string): Buffer => {
    const bytes = readDocument(dir, name(digest, what), what);
    const got = `sha256:${sha256().update(bytes).digest('hex')}`;
    if (got !== digest) throw new TsboxError({ step: 'verify', errno: 0, path: name(digest, what), detail: `the ${what}'s digest is ${got}, not ${digest}`, hint: 'the layout is damaged: it is refused' });
    return bytes;
  };
  const index = parseDocument(indexSchema, readDocument(dir, 'index.json', 'index.json'), 'image index', shown);
  const records: ImageRecord[] = [];
  for (const entry of index.manifests) {
    const annotations = entry.annotations ?? {};
    const full = annotations['io.containerd.image.name'];
    const ref = annotations['org.opencontainers.image.ref.name'];
    // A full name when the layout has one; a bare tag (skopeo's oci:DIR:TAG) is a name under localhost/.
    const imageName = typeof full === 'string' ? nameOf(full, shown) : typeof ref === 'string' ? nameOf(/[/:]/.test(ref) ? ref : `localhost/${ref}`, shown) : null;
    let top = entry;
    let manifestBytes = document(top.digest, 'manifest');
    if (documentKind(top.mediaType, shown) === 'index') {
      top = choosePlatform(parseDocument(indexSchema, manifestBytes, 'image index', shown).manifests, shown);
      manifestBytes = document(top.digest, 'manifest');
    }
    const manifest = parseDocument(manifestSchema, manifestBytes, 'manifest', shown);
    checkManifestTypes(manifest, shown);
    const configBytes = document(manifest.config.digest, 'config');
    const config = parseDocument(configSchema, configBytes, 'image config', shown);
    if (config.rootfs.diff_ids.length !== manifest.layers.length) throw bad(shown, `the config has ${config.rootfs.diff_ids.length} diff_ids for ${manifest.layers.length} layers`);
    for (const [i, l] of manifest.layers.entries()) {
      await storeLayer(store, copyLayer(store, openInside(dir, name(l.digest, 'layer'), 'layer')), l.digest, config.rootfs.diff_ids[i]!, options.onProgress);
    }
    store.writeBlob(manifest.config.digest, configBytes);
    store.writeBlob(top.digest, manifestBytes);
    const record: ImageRecord = { name: imageName ?? `sha256:${top.digest.slice(7)}`, digest: top.digest, config: manifest.config.digest, layers: manifest.layers.map((l) => l.digest), created: new Date().toISOString() };
    await store.tag(record);
    records.push(record);
  }
  if (records.length === 0) throw bad(shown, 'the layout holds no image');
  return records;
}

/** Makes a one-layer image named `name` of a root filesystem tarball (plain, gzip or zstd). */
export async function importRootfs(path: string, name: string, options: LoadOptions = {}): Promise<ImageRecord> {
  const store = options.store ?? new Store();
  const full = formatReference(parseReference(name));
  const working = store.working();
  try {
    return await importInto(store, path, full, options);
  } finally {
    working.release();
  }
}

async function importInto(store: Store, path: string, full: string, options: LoadOptions): Promise<ImageRecord> {
  // Opened once and copied (hashed as it is): what is unpacked is what was hashed.
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    throw new TsboxError({ step: 'import', errno: Math.abs((err as NodeJS.ErrnoException).errno ?? 2), path, detail: 'cannot read the tarball', hint: null }, { cause: err });
  }
  if (!fstatSync(fd).isFile()) {
    closeSync(fd);
    throw new TsboxError({ step: 'import', errno: 21, path, detail: 'not a file', hint: 'give a tar of a root filesystem (plain, gzip or zstd)' });
  }
  const copy = copyLayer(store, fd);
  const digest = await storeLayer(store, copy, null, null, options.onProgress);
  const info = store.layerInfo(digest)!;
  const configBytes = Buffer.from(JSON.stringify({ architecture: hostPlatform().architecture, os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [info.diffId] } }));
  const manifest = synthesize(store, configBytes, [{ digest, mediaType: copy.mediaType, size: copy.size }]);
  store.writeBlob(manifest.digest, manifest.bytes);
  const record: ImageRecord = { name: full, digest: manifest.digest, config: `sha256:${sha256().update(configBytes).digest('hex')}`, layers: [digest], created: new Date().toISOString() };
  await store.tag(record);
  return record;
}
