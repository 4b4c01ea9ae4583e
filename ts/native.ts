/**
 * Finds the native parts of tsbox: the napi addon (`tsbox.<platform>.node`) and
 * the `tsbox-init` helper beside it. Looked for, in this order:
 *
 * 1. `TSBOX_NATIVE_DIR`, when it is set, and nowhere else: an override that
 *    points at the wrong place fails, rather than quietly loading something else.
 * 2. A local build in a checkout (`native/`, written by `npm run build`), so a
 *    developer runs what they just built even when a platform package is installed.
 *    An installed tsbox has no `native/` (package.json `files` leaves it out).
 * 3. The platform package `@tsbox/<platform>`, which npm installs from tsbox's
 *    `optionalDependencies`, picking it by `os`, `cpu` and `libc`.
 *
 * On anything but Linux x86_64/aarch64 every entry point fails with one line that
 * names what is supported.
 */
import { accessSync, constants, existsSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { TsboxError } from './errors.js';
import type * as Addon from './generated/addon.js';

/**
 * The addon's surface: napi-rs's declaration of the Rust exports
 * (ts/generated/addon.ts, kept current by the unit suite). Its functions are
 * free functions, not methods: they may be passed around without their object.
 */
export type NativeBinding = typeof Addon;
/** A held flock on a file; released (file removed) by `release()`. */
export type NativeFileLock = Addon.FileLock;
/** A tsbox-init started by the addon (posix_spawn). */
export type NativeHelper = Addon.HelperProcess;
/** The Node end of a launch channel, or a connection to a monitor's control socket. */
export type NativeChannel = Addon.Channel;

/** Where the native parts came from. */
export type NativeSource = 'override' | 'checkout' | 'package';

export interface Native {
  binding: NativeBinding;
  /** Absolute path of the tsbox-init executable. */
  initPath: string;
  /** Absolute path of the directory both were found in. */
  dir: string;
  source: NativeSource;
  /** `linux-x64-gnu`, `linux-arm64-musl`, ... */
  platform: string;
}

export type Libc = 'gnu' | 'musl';

/** Every platform tsbox ships a package for: `@tsbox/<platform>`. */
export const PLATFORMS = ['linux-x64-gnu', 'linux-arm64-gnu', 'linux-x64-musl', 'linux-arm64-musl'] as const;

const SUPPORTED = 'tsbox runs on Linux x86_64 and aarch64, with glibc or musl';
const ENOENT = 2;
const EACCES = 13;

const require = createRequire(import.meta.url);
const here = dirname(fileURLToPath(import.meta.url));

/**
 * `linux-x64-gnu`, `linux-arm64-musl`, ...: the platform package this process
 * needs. Throws a one-line {@link TsboxError} on a platform tsbox does not support.
 */
export function platformTriple(platform: NodeJS.Platform = process.platform, arch: string = process.arch, libc: () => Libc = detectLibc): string {
  if (platform !== 'linux') {
    const name = ({ darwin: 'macOS', win32: 'Windows' } as Record<string, string>)[platform] ?? platform;
    const hint = platform === 'darwin' || platform === 'win32' ? `${SUPPORTED}: containers are made of Linux namespaces (use a Linux VM${platform === 'win32' ? ' or WSL 2' : ''})` : SUPPORTED;
    throw new TsboxError({ step: 'load', errno: 0, path: `${platform}-${arch}`, detail: `${name} is not supported`, hint });
  }
  if (arch !== 'x64' && arch !== 'arm64') {
    const detail = arch === 'ia32' || arch === 'arm' ? `32-bit ${arch} is not supported` : `the ${arch} architecture is not supported`;
    throw new TsboxError({ step: 'load', errno: 0, path: `${platform}-${arch}`, detail, hint: SUPPORTED });
  }
  return `linux-${arch}-${libc()}`;
}

let libcCache: Libc | undefined;

/**
 * The C library this Node.js runs on. Node's own report says so for certain
 * (`glibcVersionRuntime` exists only on glibc; a musl Node maps `ld-musl-*`);
 * `/usr/bin/ldd` naming musl is the fallback.
 */
export function detectLibc(): Libc {
  if (libcCache) return libcCache;
  // ldd is a file read; a process report costs 5-7 ms, paid on every CLI start.
  libcCache = libcFromLdd() ?? libcFromReport() ?? 'gnu';
  return libcCache;
}

function libcFromReport(): Libc | null {
  const report = process.report as (NodeJS.ProcessReport & { excludeNetwork?: boolean }) | undefined;
  if (typeof report?.getReport !== 'function') return null;
  // The network part of a report resolves host names of open sockets: slow, and not needed.
  const excludeNetwork = report.excludeNetwork;
  try {
    report.excludeNetwork = true;
    const r = report.getReport() as { header?: { glibcVersionRuntime?: string }; sharedObjects?: unknown };
    if (r.header?.glibcVersionRuntime) return 'gnu';
    if (Array.isArray(r.sharedObjects) && r.sharedObjects.some((f) => typeof f === 'string' && (f.includes('ld-musl-') || f.includes('libc.musl-')))) return 'musl';
    return null;
  } catch {
    return null;
  } finally {
    report.excludeNetwork = excludeNetwork;
  }
}

function libcFromLdd(): Libc | null {
  try {
    const ldd = readFileSync('/usr/bin/ldd', 'latin1');
    return ldd.includes('musl') ? 'musl' : /GNU C Library|GLIBC|glibc/i.test(ldd) ? 'gnu' : null;
  } catch {
    return null;
  }
}

/** The directories looked in, in order (see the top of this file). */
export function nativeCandidates(platform: string, env: NodeJS.ProcessEnv = process.env): { dir: string; source: NativeSource }[] {
  return [...candidates(platform, env)];
}

/**
 * The same, one at a time: the platform package is only looked up (a module
 * resolution, ~1.5 ms when it fails) when a checkout build is not there.
 */
function* candidates(platform: string, env: NodeJS.ProcessEnv): Generator<{ dir: string; source: NativeSource }> {
  const override = env.TSBOX_NATIVE_DIR;
  if (override) {
    yield { dir: resolve(override), source: 'override' };
    return;
  }
  yield { dir: resolve(here, '..', 'native'), source: 'checkout' };
  let dir: string;
  try {
    dir = dirname(require.resolve(`@tsbox/${platform}/package.json`));
  } catch {
    return; // Not installed: the error below says how to get it.
  }
  yield { dir, source: 'package' };
}

const isFile = (path: string): boolean => {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
};

/**
 * Finds the addon and the helper for `platform` without loading the addon. A
 * checkout's `native/` without this platform's addon is passed over (it was built
 * for another); an override or a platform package without it is an error, and so
 * is an addon without tsbox-init beside it, or a tsbox-init that is not executable.
 */
export function locateNative(platform: string = platformTriple(), env: NodeJS.ProcessEnv = process.env): Omit<Native, 'binding'> & { addonPath: string } {
  const addonName = `tsbox.${platform}.node`;
  const fix = (source: NativeSource): string =>
    source === 'package' ? `reinstall @tsbox/${platform}` : source === 'override' ? 'point TSBOX_NATIVE_DIR at a directory holding both' : 'run `npm run build`';
  for (const { dir, source } of candidates(platform, env)) {
    const addonPath = join(dir, addonName);
    const initPath = join(dir, 'tsbox-init');
    if (!isFile(addonPath)) {
      if (source === 'checkout') continue;
      const detail =
        source === 'package' ? `@tsbox/${platform} is installed without ${addonName}` : existsSync(dir) ? `TSBOX_NATIVE_DIR holds no ${addonName}` : 'TSBOX_NATIVE_DIR does not exist';
      const hint = source === 'override' ? `${fix(source)}, or unset it to use the installed @tsbox/${platform}` : fix(source);
      throw new TsboxError({ step: 'load', errno: ENOENT, path: source === 'override' && !existsSync(dir) ? dir : addonPath, detail, hint });
    }
    if (!isFile(initPath)) {
      throw new TsboxError({ step: 'load', errno: ENOENT, path: initPath, detail: 'tsbox-init is missing beside the addon', hint: fix(source) });
    }
    try {
      accessSync(initPath, constants.X_OK);
    } catch {
      const mode = (statSync(initPath).mode & 0o7777).toString(8).padStart(4, '0');
      throw new TsboxError({
        step: 'load',
        errno: EACCES,
        path: initPath,
        detail: `tsbox-init is not executable (mode ${mode})`,
        hint: `its run bit was lost on the way (a copy or an archive that drops file modes); ${fix(source)}, or chmod 755 it`,
      });
    }
    return { addonPath, initPath, dir, source, platform };
  }
  throw new TsboxError({
    step: 'load',
    errno: ENOENT,
    path: `@tsbox/${platform}`,
    detail: `the native addon and tsbox-init were not found (looked in ${nativeCandidates(platform, env).map((c) => c.dir).join(', ')})`,
    hint: `install @tsbox/${platform} (npm installs it with tsbox unless optional dependencies are omitted), run \`npm run build\` in a checkout, or set TSBOX_NATIVE_DIR to a directory holding both`,
  });
}

let cached: Native | undefined;

/** Locates and loads the native parts once per process. */
export function loadNative(): Native {
  if (cached) return cached;
  const found = locateNative();
  let binding: NativeBinding;
  try {
    binding = require(found.addonPath) as NativeBinding;
  } catch (err) {
    const message = (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? '';
    const glibc = /GLIBC_[0-9.]+/.exec(message)?.[0];
    throw new TsboxError(
      {
        step: 'load',
        errno: 0,
        path: found.addonPath,
        detail: `the addon did not load: ${message}`,
        hint: glibc
          ? `it needs ${glibc}, newer than this system's glibc; use a tsbox build made for an older glibc (the published packages need 2.17)`
          : `it may be built for another platform or damaged; ${found.source === 'package' ? `reinstall @tsbox/${found.platform}` : found.source === 'checkout' ? 'run `npm run build`' : 'check TSBOX_NATIVE_DIR'}`,
      },
      { cause: err },
    );
  }
  if (typeof binding?.Channel !== 'function' || typeof binding.PLAN_VERSION !== 'number') {
    throw new TsboxError({ step: 'load', errno: 0, path: found.addonPath, detail: 'the file is not the tsbox addon (it has no Channel or PLAN_VERSION)', hint: 'rebuild it, or reinstall tsbox' });
  }
  cached = { binding, initPath: found.initPath, dir: found.dir, source: found.source, platform: found.platform };
  return cached;
}
