/** What `tsbox rmi`, `tsbox image inspect` and `tsbox image prune` do, on the store. */
import { TsboxError } from '../errors.js';
import { list } from '../runtime/lifecycle.js';
import { lookupImage } from './run.js';
import { configSchema, parseDocument } from './spec.js';
import { shownRecord, Store, type ImageRecord } from './store.js';

function notFound(ref: string): TsboxError {
  return new TsboxError({ step: 'image', errno: 2, path: ref, detail: 'no such image in the store', hint: 'see `tsbox images`' });
}

/**
 * The layer directories this user's containers run on, whether or not an
 * image still names them (a re-pulled tag, `rmi --force`): each one's
 * rootfs (`bundle`: an image's top layer) and the lower layers its state
 * records. A state written before layers were recorded keeps the layers of
 * the named image whose top layer it runs on.
 */
function layersInUse(store: Store): Set<string> {
  const used = new Set<string>();
  const bundles = new Set<string>();
  for (const s of list({ all: true })) {
    used.add(s.bundle);
    bundles.add(s.bundle);
    for (const d of s.layers ?? []) used.add(d);
  }
  for (const image of store.images()) {
    const top = image.layers.at(-1);
    if (top !== undefined && bundles.has(store.layerDir(top))) for (const d of image.layers) used.add(store.layerDir(d));
  }
  return used;
}

/**
 * Removes the image `ref` names, then the layers and blobs no image and no
 * container uses any more. `force`: even when a container was made from it,
 * whose layers then stay (nameless) until it is removed and a prune runs.
 */
export async function removeImage(ref: string, options: { force?: boolean; onWait?: () => void } = {}, store: Store = new Store()): Promise<ImageRecord> {
  // Before the containers are listed: a launch of this image between its
  // layers and its state is waited for, and then seen.
  const lock = await store.pruning(options.onWait);
  try {
    // Found whether or not its layers are all there: a damaged image is removed as any other.
    const record = lookupImage(store, ref);
    if (!record) throw notFound(ref);
    const top = record.layers.at(-1);
    if (!options.force && top !== undefined) {
      const user = list({ all: true }).find((s) => s.bundle === store.layerDir(top));
      if (user) throw new TsboxError({ step: 'image', errno: 16, path: ref, detail: `container ${user.name ?? user.id.slice(0, 12)} was made from it`, hint: 'remove the container first (tsbox rm), or pass --force' });
    }
    await store.untag(record.name);
    await store.prune(layersInUse(store));
    return record;
  } finally {
    lock.unlock();
  }
}

/** The record, the config and the layers of the image `ref` names. */
export function inspectImage(ref: string, store: Store = new Store()): unknown {
  const record = lookupImage(store, ref);
  if (!record) throw notFound(ref);
  const missing = store.missingLayers(record.layers);
  return {
    ...shownRecord(record),
    size: store.sizeOf(record),
    config: { digest: record.config, ...parseDocument(configSchema, store.readBlob(record.config), 'image config', record.name) },
    layers: record.layers.map((d) => (missing.includes(d) ? { digest: d, missing: true } : { ...store.layerInfo(d), dir: store.layerDir(d) })),
  };
}

/** Removes the layers and blobs no image uses, and what failed pulls left. */
export async function pruneImages(store: Store = new Store(), onWait?: () => void): Promise<{ layers: string[]; blobs: string[]; temp: string[] }> {
  const lock = await store.pruning(onWait);
  try {
    const removed = await store.prune(layersInUse(store));
    return { ...removed, temp: store.cleanTemp() };
  } finally {
    lock.unlock();
  }
}

/** What `tsbox rmi` and `tsbox image prune` say while a launch holds the store. */
export const WAITING_FOR_LAUNCH = 'tsbox: waiting for a launch of an image to record its layers in its state';
