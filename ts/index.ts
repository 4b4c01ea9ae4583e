/**
 * tsbox: Linux containers for Node.js.
 *
 * ```ts
 * import { run, spawn } from 'tsbox';
 * const r = await run(['sh', '-c', 'echo hi'], { rootfs: './rootfs', timeout: 5_000 });
 * const c = await spawn(['sh', '-c', 'echo $$; hostname'], { rootfs: './rootfs', stdio: 'inherit' });
 * const { exitCode } = await c.wait();
 * ```
 */
import { checkImageRunInput, limitsOf, parseRunInput, type RunOptions } from './config/schema.js';
import { Container } from './runtime/container.js';
import { launch } from './runtime/launch.js';
import { runCaptured, type CaptureOptions, type RunResult } from './runtime/run.js';
import { TsboxError } from './errors.js';
import type { OciSeccompProfile } from './config/seccomp.js';
import { loadNative, type NativeFileLock } from './native.js';
import type { PullOptions } from './image/pull.js';
import type { ImageRecord } from './image/store.js';

export { TsboxError } from './errors.js';
export type { FailureReport } from './errors.js';
export type { RunOptions } from './config/schema.js';
export type { OciSeccompProfile, SeccompOption } from './config/seccomp.js';
export { AbortError, Container } from './runtime/container.js';
export type { ExitResult } from './runtime/container.js';
export type { CaptureOptions, RunResult } from './runtime/run.js';
export { loadConfig } from './config/file.js';
export type { ConfigFile } from './config/file.js';
export type { ExecOptions } from './runtime/container.js';
export { ContainerRef, list, open } from './runtime/lifecycle.js';
export type { Ended } from './runtime/lifecycle.js';
export type { ContainerState } from './runtime/state.js';
export { createPool, Pool } from './pool/index.js';
export type { PoolOptions, PoolProcessOptions, PoolRunOptions, PoolStats } from './pool/index.js';
export type { PullOptions, PullProgress } from './image/pull.js';
export type { ImageRecord } from './image/store.js';
export type { NetworkInfo } from './network/bridge.js';
export type { RefusedConnection, RefusedSummary } from './network/refused.js';
export type { NetworkMode, PortMapping } from './config/network.js';

/**
 * How `image` is pulled when the pull policy says it must be (see
 * {@link pull}): `onProgress` sees each layer's download and unpacking,
 * `insecure` names registries reached over plain http, `credentials`
 * replace those of the auth files.
 */
export type ImagePulling = Pick<PullOptions, 'onProgress' | 'insecure' | 'credentials'>;

/** Options of `spawn`: the container's, plus an AbortSignal and how its image is pulled. */
export type SpawnOptions = RunOptions & { signal?: AbortSignal | undefined; pulling?: ImagePulling | undefined };

/**
 * Starts `command` in a new container and resolves once it has been exec'd.
 * Rejects with a {@link TsboxError} naming the step that failed, without leaving
 * anything behind.
 */
export async function spawn(command: readonly string[], options: SpawnOptions = {}): Promise<Container> {
  const { signal, pulling, ...given } = optionsObject(options);
  const { command: cmd, options: rest, layers, notices, imageLock } = await withImage(command, given, pulling);
  try {
    const { command: argv, options: o } = parseRunInput(cmd, rest);
    return await launch(argv, o, { signal, explicitLimits: hasLimits(rest), layers, notices, imageLock });
  } finally {
    imageLock?.unlock();
  }
}

/**
 * With `image`: the image's command, options and layers (pulled as `pull`
 * says, as `pulling` says). The image code is loaded only then: a rootfs's
 * launch never pays for it. Bad options are refused before anything is
 * pulled; an image in the store is found once, under the lock.
 * `imageLock`: the store's launch lock (Store.launching), held from before
 * the layers are resolved; launch releases it once its state records
 * them, the caller on every other way out.
 */
async function withImage(command: readonly string[], options: RunOptions, pulling: ImagePulling = {}): Promise<{ command: readonly string[]; options: RunOptions; layers?: string[] | undefined; notices?: string[] | undefined; imageLock?: NativeFileLock | undefined }> {
  if (options.image === undefined) return { command, options };
  const [{ imageRun }, { Store }] = await Promise.all([import('./image/run.js'), import('./image/store.js')]);
  const store = new Store();
  const imageLock = await store.launching();
  try {
    const beforePull = () => checkImageRunInput(command, options);
    return { ...(await imageRun(command, options, { ...pulling, store }, beforePull)), imageLock };
  } catch (err) {
    imageLock.unlock();
    throw err;
  }
}

/** The options argument, which must be an object when given (a TsboxError otherwise, never a TypeError). */
function optionsObject<T extends object>(options: T | undefined): T {
  if (options === undefined) return {} as T;
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    const got = options === null ? 'null' : Array.isArray(options) ? 'an array' : typeof options;
    throw new TsboxError({ step: 'config', errno: 0, path: '(options)', detail: `the options must be an object, not ${got}`, hint: 'pass { rootfs, ... }, or leave the options out' });
  }
  return options;
}

/**
 * Makes a container without starting its command: the sandbox is built and
 * waits (OCI `create`); `container.start()` runs the command. With `detach`
 * it outlives this process, and `open()` reaches it from any other.
 */
export async function create(command: readonly string[], options: SpawnOptions = {}): Promise<Container> {
  const { signal, pulling, ...given } = optionsObject(options);
  const { command: cmd, options: rest, layers, notices, imageLock } = await withImage(command, given, pulling);
  try {
    const { command: argv, options: o } = parseRunInput(cmd, rest);
    return await launch(argv, o, { signal, explicitLimits: hasLimits(rest), deferProcess: true, layers, notices, imageLock });
  } finally {
    imageLock?.unlock();
  }
}

function hasLimits(o: Record<string, unknown>): boolean {
  return Object.keys(limitsOf(o)).length > 0;
}

/**
 * Runs `command` in a new container to completion and resolves with its exit
 * status, its output and its usage. A non-zero exit resolves (look at
 * `exitCode`); a container that could not start rejects with a
 * {@link TsboxError}, an aborted one with an {@link AbortError}.
 *
 * ```ts
 * const r = await run(['sh', '-c', 'echo hi'], { rootfs: './rootfs', timeout: 5_000 });
 * r.exitCode; r.stdout; r.timedOut;
 * ```
 */
export async function run(command: readonly string[], options?: RunOptions & CaptureOptions & { encoding?: 'utf8'; pulling?: ImagePulling | undefined }): Promise<RunResult<string>>;
export async function run(command: readonly string[], options: RunOptions & CaptureOptions & { encoding: 'buffer'; pulling?: ImagePulling | undefined }): Promise<RunResult<Buffer>>;
export async function run(command: readonly string[], options: RunOptions & CaptureOptions & { pulling?: ImagePulling | undefined } = {}): Promise<RunResult> {
  const { input, encoding, maxBuffer, signal, pulling, ...given } = optionsObject(options);
  const { command: cmd, options: rest, layers, imageLock } = await withImage(command, given, pulling);
  try {
    const { command: argv, options: o } = parseRunInput(cmd, rest);
    return await runCaptured(argv, o, { input, encoding, maxBuffer, signal }, hasLimits(rest), layers, imageLock);
  } finally {
    imageLock?.unlock();
  }
}

/**
 * Pulls an image into the store (`$TSBOX_STORAGE`, else /var/lib/tsbox as
 * root, $XDG_DATA_HOME/tsbox otherwise) and resolves with its record.
 * `onProgress` sees each layer's download and unpacking.
 *
 * ```ts
 * await pull('alpine:3.20', { onProgress: (p) => console.log(p.digest, p.phase, p.bytes, p.total) });
 * await run(['echo', 'hi'], { image: 'alpine:3.20' });
 * ```
 */
export async function pull(ref: string, options: PullOptions = {}): Promise<ImageRecord> {
  const { pull: doPull } = await import('./image/pull.js');
  return doPull(ref, options);
}

/**
 * tsbox's default seccomp profile, as an OCI `linux.seccomp` object: the one
 * every container gets unless told otherwise, to edit and pass back as
 * `seccomp` (or save as JSON for `--security-opt seccomp=PATH`).
 */
export function defaultSeccompProfile(): OciSeccompProfile {
  return JSON.parse(loadNative().binding.seccompDefaultProfile()) as OciSeccompProfile;
}
