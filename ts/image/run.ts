/**
 * A container from an image: the image found in the store (or pulled, as
 * `pull` says), its config applied under the caller's options as Docker
 * applies it (Entrypoint and Cmd, Env under `env`, User, WorkingDir,
 * StopSignal, ExposedPorts under `expose`), and
 * its layers as the container's root: the top one as the rootfs, the rest
 * as lower layers of the same overlay, with the container's own throwaway
 * upper layer over them.
 */
import { printable, TsboxError } from '../errors.js';
import { parseExpose } from '../config/network.js';
import { PULL_POLICIES, signalName, type PullPolicy, type RunOptions } from '../config/schema.js';
import { formatReference, parseReference } from './reference.js';
import type { PullOptions } from './pull.js';
import { Store, type ImageRecord, type RunConfig } from './store.js';

function configError(path: string, detail: string, hint: string | null = null): TsboxError {
  return new TsboxError({ step: 'config', errno: 0, path, detail, hint });
}

/**
 * The stored record `ref` names: by full name, by manifest digest or its
 * prefix, or by a reference as given (`busybox:1`, normalized as Docker's
 * short names); null when no record has that name. Its layers may be
 * incomplete (see Store.missingLayers).
 */
export function lookupImage(store: Store, ref: string): ImageRecord | null {
  const direct = store.find(ref);
  if (direct) return direct;
  try {
    const r = parseReference(ref);
    return store.find(r.digest !== null ? `${r.domain}/${r.repository}@${r.digest}` : formatReference(r));
  } catch {
    return null;
  }
}

/** The error for an image whose record is there but not all of whose layers are. */
export function incompleteImage(ref: string, missing: readonly string[]): TsboxError {
  return new TsboxError({ step: 'image', errno: 2, path: ref, detail: `the image is in the store, but its layer ${missing[0]}${missing.length > 1 ? ` (and ${missing.length - 1} more)` : ''} is not`, hint: `pull it again (tsbox pull ${ref}), or remove it (tsbox rmi ${ref})` });
}

/** The stored image `ref` names (see lookupImage) with every layer there; null otherwise. */
export function findImage(store: Store, ref: string): ImageRecord | null {
  const found = lookupImage(store, ref);
  return found && store.missingLayers(found.layers).length === 0 ? found : null;
}

/**
 * The last image found complete in this process, with the stamp of the
 * index it was found in: `tsbox run IMAGE` looks its image up before the
 * launch (to pull it with progress shown) and the launch again, under the
 * store's launch lock; the second finds it here while the index is
 * unchanged (an rmi, a tag or a pull rewrites it). Its layers are checked
 * each time.
 */
let lastFound: { root: string; ref: string; stamp: string; record: ImageRecord } | null = null;

/** The image `ref`, pulled when `policy` says so; `beforePull` runs (and may throw) only when it is to be pulled. */
export async function ensureImage(ref: string, policy: PullPolicy = 'missing', options: PullOptions = {}, beforePull?: () => void): Promise<ImageRecord> {
  const store = options.store ?? new Store();
  if (policy !== 'always') {
    const stamp = store.indexStamp();
    const remembered = stamp !== null && lastFound && lastFound.root === store.root && lastFound.ref === ref && lastFound.stamp === stamp ? lastFound.record : null;
    const found = remembered ?? lookupImage(store, ref);
    const missing = found ? store.missingLayers(found.layers) : [];
    if (found && missing.length === 0) {
      // Stamped before the read: a write in between changes the stamp, and the next look-up reads again.
      if (stamp !== null) lastFound = { root: store.root, ref, stamp, record: found };
      return found;
    }
    if (policy === 'never') {
      if (found) throw incompleteImage(ref, missing);
      throw new TsboxError({ step: 'image', errno: 2, path: ref, detail: 'the image is not in the store, and the pull policy is never', hint: `pull it first: tsbox pull ${ref}` });
    }
  }
  beforePull?.();
  // The registry's client is loaded only when there is something to pull:
  // an image in the store runs without it.
  const { pull } = await import('./pull.js');
  return pull(ref, { ...options, store });
}

/** What a container of `record` takes from its config: the record's copy, or the blob's for a record written before copies were kept. */
export function runConfig(store: Store, record: ImageRecord): RunConfig {
  return record.runConfig ?? store.configOf(record.config);
}

export interface ImageRun {
  command: string[];
  options: RunOptions;
  /** The lower layers under `options.rootfs`, top first. */
  layers: string[];
  /** What of the image's config was left out, one line each (shown as the container's notices). */
  notices: string[];
}

/**
 * An image's containers, before their command: the options and layers
 * (imageRun's), and what a command is made of: the entrypoint, and the
 * command used when none is given (a pool's sandboxes share this; each
 * call brings its command).
 */
export interface ImageBase {
  options: RunOptions;
  layers: string[];
  entrypoint: string[];
  /** Used when no command is given: the image's Cmd, or none when `entrypoint` was given. */
  defaultCommand: string[];
  name: string;
  /** What of the image's config was left out, one line each. */
  notices: string[];
}

/** The command of a container of `base` given `command` (empty: the image's), refused when there is none. */
export function imageCommand(base: ImageBase, command: readonly string[]): string[] {
  const argv = [...base.entrypoint, ...(command.length > 0 ? command : base.defaultCommand)];
  if (argv.length === 0) throw configError('command', `the image ${base.name} has no Entrypoint or Cmd, and no command was given`, 'give the command after the image');
  return argv;
}

/** The command, options and layers of a container of `options.image`. */
export async function imageRun(command: readonly string[], options: RunOptions, pullOptions: PullOptions = {}, beforePull?: () => void): Promise<ImageRun> {
  const base = await imageBase(options, pullOptions, beforePull);
  return { command: imageCommand(base, command), options: base.options, layers: base.layers, notices: base.notices };
}

/** `options.image` found (or pulled) and its config applied under `options`: see ImageBase. */
export async function imageBase(options: RunOptions, pullOptions: PullOptions = {}, beforePull?: () => void): Promise<ImageBase> {
  const { image, pull: policy, entrypoint, ...rest } = options;
  if (typeof image !== 'string' || image.length === 0) throw configError('image', 'must be an image reference (a non-empty string)');
  if (rest.rootfs !== undefined) throw configError('image', 'cannot be combined with rootfs: the image is the root filesystem', 'give one of them');
  if (rest.writableRootfs) throw configError('writableRootfs', "cannot be combined with image: an image's layers are shared and never written", "writes go to the container's own throwaway layer");
  // Checked here: the options' schema never sees it (it is the image's, not the container's).
  if (policy !== undefined && !(PULL_POLICIES as readonly unknown[]).includes(policy)) {
    throw configError('pull', `"${printable(String(policy))}" is not a pull policy`, 'use missing (the default), always or never');
  }
  const store = pullOptions.store ?? new Store();
  const record = await ensureImage(image, policy ?? 'missing', { ...pullOptions, store }, beforePull);
  const config = runConfig(store, record);
  const entry = entrypoint ?? config.Entrypoint ?? [];
  const defaultCommand = entrypoint !== undefined ? [] : (config.Cmd ?? []);
  const env: Record<string, string> = {};
  for (const kv of config.Env ?? []) {
    const eq = kv.indexOf('=');
    if (eq > 0) env[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  const notices: string[] = [];
  // An image's StopSignal this host has no name for (SIGRTMIN+3, which
  // systemd images give) is not a reason to refuse the image: stop sends
  // SIGTERM instead, and says so.
  let stopSignal: NodeJS.Signals | undefined;
  if (rest.stopSignal === undefined && config.StopSignal) {
    stopSignal = signalName(config.StopSignal) ?? undefined;
    if (stopSignal === undefined) notices.push(`tsbox: note: the image's StopSignal "${printable(config.StopSignal)}" is not a signal tsbox can send: stop sends SIGTERM (--stop-signal chooses another)`);
  }
  // ExposedPorts, as Docker keeps them ("80/tcp", "53/udp", "8080"): what
  // publishAll publishes, before the caller's own expose. One tsbox cannot
  // publish (sctp) is left out, and said when publishAll is asked for.
  const exposed: string[] = [];
  for (const key of Object.keys(config.ExposedPorts ?? {})) {
    if (parseExpose(key)) exposed.push(key);
    else if (rest.publishAll) notices.push(`tsbox: note: the image exposes "${printable(key)}", which tsbox cannot publish (tcp and udp ports only): left out`);
  }
  const dirs = [...record.layers].reverse().map((d) => store.layerDir(d));
  if (dirs.length === 0) throw new TsboxError({ step: 'image', errno: 0, path: record.name, detail: 'the image has no layers', hint: null });
  return {
    name: record.name,
    entrypoint: [...entry],
    defaultCommand: [...defaultCommand],
    options: {
      ...rest,
      rootfs: dirs[0]!,
      env: { ...env, ...rest.env },
      ...(rest.user === undefined && config.User ? { user: config.User } : {}),
      ...(rest.cwd === undefined && config.WorkingDir ? { cwd: config.WorkingDir } : {}),
      ...(stopSignal !== undefined ? { stopSignal } : {}),
      ...(exposed.length > 0 ? { expose: [...exposed, ...(rest.expose ?? [])] } : {}),
    },
    layers: dirs.slice(1),
    notices,
  };
}
