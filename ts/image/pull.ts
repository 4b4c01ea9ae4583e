/**
 * Pulling an image into the store: the manifest (the host's platform's, from
 * an index), its config, and each layer downloaded (resumable, verified,
 * bounded in parallel, retried with backoff) and unpacked once, in Rust, off
 * the main thread.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

import { fromNativeReport, printable, TsboxError } from '../errors.js';
import { loadNative } from '../native.js';
import { formatReference, parseReference, type Reference } from './reference.js';
import { Registry, type RegistryOptions } from './registry.js';
import { checkManifestTypes, choosePlatform, configSchema, documentKind, indexSchema, manifestSchema, MAX_LAYER_BYTES, MAX_LAYER_ENTRIES, parseDocument, type Descriptor, type ImageConfig, type Manifest } from './spec.js';
import { removeTree, Store, type ImageRecord, type LayerInfo } from './store.js';

/** What a pull reports as it goes: one event per layer step. */
export interface PullProgress {
  /** The layer's digest (or the manifest's, for `resolved`). */
  digest: string;
  /** `resolved`: the manifest is known; `exists`: the layer is in the store already. */
  phase: 'resolved' | 'exists' | 'download' | 'unpack' | 'done' | 'retry';
  /** Bytes downloaded so far, and the layer's size. */
  bytes: number;
  total: number;
  /** For `retry`: why. For `done`: notes of the unpacker, joined. */
  message?: string | undefined;
}

export interface PullOptions extends RegistryOptions {
  onProgress?: ((p: PullProgress) => void) | undefined;
  /** The store (default: the user's, or $TSBOX_STORAGE). */
  store?: Store | undefined;
  /** Layers downloaded at once. Default 3. */
  parallel?: number | undefined;
  /** Attempts per layer download. Default 4. */
  attempts?: number | undefined;
}


/** Pulls `ref` into the store and names it there; resolves with its record. */
export async function pull(ref: string, options: PullOptions = {}): Promise<ImageRecord> {
  const r = parseReference(ref);
  const store = options.store ?? new Store();
  const working = store.working();
  try {
    return await pullInto(store, r, options);
  } finally {
    working.release();
  }
}

async function pullInto(store: Store, r: Reference, options: PullOptions): Promise<ImageRecord> {
  const registry = new Registry(r.domain, r.repository, options);
  const where = formatReference(r);
  const top = await registry.manifest(r.digest ?? r.tag!);
  let manifestDoc = top;
  let index: string | undefined;
  if (documentKind(top.mediaType, where) === 'index') {
    const idx = parseDocument(indexSchema, top.bytes, 'image index', where);
    const chosen = choosePlatform(idx.manifests, where);
    manifestDoc = await registry.manifest(chosen.digest);
    if (documentKind(manifestDoc.mediaType, where) !== 'manifest') throw new TsboxError({ step: 'image_manifest', errno: 0, path: where, detail: 'an index names another index', hint: null });
    store.writeBlob(top.digest, top.bytes);
    index = top.digest;
  }
  const manifest = parseDocument(manifestSchema, manifestDoc.bytes, 'manifest', where);
  checkManifestTypes(manifest, where);
  options.onProgress?.({ digest: manifestDoc.digest, phase: 'resolved', bytes: 0, total: manifest.layers.reduce((n, l) => n + l.size, 0) });
  const configBytes = store.hasBlob(manifest.config.digest) ? store.readBlob(manifest.config.digest) : await registry.blobBytes(manifest.config.digest, manifest.config.size);
  const config = parseDocument(configSchema, configBytes, 'image config', where);
  if (config.rootfs.diff_ids.length !== manifest.layers.length) {
    throw new TsboxError({ step: 'image_manifest', errno: 0, path: where, detail: `the manifest has ${manifest.layers.length} layers and the config ${config.rootfs.diff_ids.length} diff_ids`, hint: null });
  }
  if (config.os !== undefined && config.os !== 'linux') throw new TsboxError({ step: 'image_platform', errno: 0, path: where, detail: `the image is for ${printable(config.os, 100)}, not linux`, hint: null });
  store.writeBlob(manifest.config.digest, configBytes);
  await fetchLayers(registry, store, manifest, config, options);
  // The manifest last: an image is in the store once everything it names is.
  store.writeBlob(manifestDoc.digest, manifestDoc.bytes);
  const record: ImageRecord = {
    name: r.digest !== null ? `${r.domain}/${r.repository}@${r.digest}` : where,
    digest: manifestDoc.digest,
    config: manifest.config.digest,
    layers: manifest.layers.map((l) => l.digest),
    index,
    created: new Date().toISOString(),
  };
  await store.tag(record);
  return record;
}

async function fetchLayers(registry: Registry, store: Store, manifest: Manifest, config: ImageConfig, options: PullOptions): Promise<void> {
  const queue = manifest.layers.map((l, i) => ({ layer: l, diffId: config.rootfs.diff_ids[i]! }));
  // One layer listed twice (an empty layer) is fetched once; listed twice
  // with two diff_ids, each is checked (one of them is refused).
  const seen = new Set<string>();
  const work = queue.filter((q) => {
    const key = `${q.layer.digest} ${q.diffId}`;
    return seen.has(key) ? false : (seen.add(key), true);
  });
  const parallel = Math.max(1, options.parallel ?? 3);
  let next = 0;
  let failed: Error | undefined;
  const worker = async () => {
    while (next < work.length && failed === undefined) {
      const { layer, diffId } = work[next++]!;
      try {
        await fetchLayer(registry, store, layer, diffId, options);
      } catch (err) {
        failed ??= err instanceof Error ? err : new Error(String(err));
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, work.length) }, worker));
  if (failed !== undefined) throw failed;
}

async function fetchLayer(registry: Registry, store: Store, layer: Descriptor, diffId: string, options: PullOptions): Promise<void> {
  const report = (phase: PullProgress['phase'], bytes: number, message?: string) => options.onProgress?.({ digest: layer.digest, phase, bytes, total: layer.size, message });
  const made = await layerOnce(store, layer.digest, diffId, async () => {
    const file = store.downloadPath(layer.digest);
    const attempts = Math.max(1, options.attempts ?? 4);
    report('download', 0);
    for (let attempt = 1; ; attempt++) {
      let bytes = 0;
      try {
        await registry.blobToFile(layer.digest, layer.size, file, (n) => {
          bytes += n;
          report('download', bytes);
        });
        break;
      } catch (err) {
        // Content that does not match its digest is never kept, nor asked for again.
        if (err instanceof TsboxError && err.step === 'verify') {
          rmSync(file, { force: true });
          throw err;
        }
        if (attempt >= attempts) throw err;
        const wait = 250 * 2 ** (attempt - 1);
        report('retry', bytes, `${err instanceof Error ? err.message : String(err)}; again in ${wait} ms`);
        await sleep(wait);
      }
    }
    report('unpack', layer.size);
    // Unpacked or refused, the download has served: a refusal is the layer's, not the transfer's.
    const info = await unpackInto(store, file, layer.digest, diffId).finally(() => rmSync(file, { force: true }));
    report('done', layer.size, info.notes.join('; ') || undefined);
  });
  if (!made) report('exists', layer.size);
}

/**
 * Stores layer `digest` once (Store.layerOnce: `make` unpacks it when it is
 * not there) and checks its diff_id either way: a layer already in the
 * store was checked against the config of the image that brought it, not
 * against this one's, which must claim the same uncompressed digest (the
 * one recorded when it was unpacked). Else an image could claim content it
 * does not have, by naming a layer another image brought. `diffId` null
 * (an imported tarball, which has no config yet): nothing to check.
 */
export async function layerOnce(store: Store, digest: string, diffId: string | null, make: () => Promise<void>): Promise<boolean> {
  const made = await store.layerOnce(digest, make);
  if (!made && diffId !== null) {
    const stored = store.layerInfo(digest)?.diffId;
    if (stored !== diffId) throw diffIdMismatch(digest, stored ?? 'not recorded', diffId);
  }
  return made;
}

function diffIdMismatch(digest: string, got: string, diffId: string): TsboxError {
  return new TsboxError({ step: 'verify', errno: 0, path: digest, detail: `the layer's uncompressed digest is ${got}, not the config's ${diffId}`, hint: 'the image is inconsistent: it is refused' });
}

/** Unpacks the blob at `file` into a temporary directory, checks its diff_id and moves it into place. */
export async function unpackInto(store: Store, file: string, digest: string, diffId: string | null): Promise<LayerInfo> {
  const tmp = store.tempPath('unpack');
  mkdirSync(tmp, { mode: 0o755 });
  try {
    let out;
    try {
      out = await loadNative().binding.unpackLayer(file, tmp, MAX_LAYER_BYTES, MAX_LAYER_ENTRIES);
    } catch (err) {
      throw fromNativeReport(err, 'unpack', digest);
    }
    if (diffId !== null && out.diffId !== diffId) throw diffIdMismatch(digest, out.diffId, diffId);
    const info: LayerInfo = { digest, diffId: out.diffId, size: out.bytes, entries: out.entries, notes: out.notes };
    store.commitLayer(tmp, info);
    return info;
  } catch (err) {
    removeTree(tmp);
    throw err;
  }
}


