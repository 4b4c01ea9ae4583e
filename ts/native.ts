/**
 * Finds the native parts of tsbox: the napi addon (`tsbox.<platform>.node`) and
 * the `tsbox-init` helper beside it. In order: the TSBOX_NATIVE_DIR override,
 * the installed platform package (`@tsbox/<platform>`), a local build in a
 * checkout (`native/`).
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { TsboxError } from './errors.js';

/** The addon's surface (the generated `native/index.d.ts` is the build's record of it). */
export interface NativeBinding {
  Channel: new () => NativeChannel;
  monotonicNs(): bigint;
  PLAN_VERSION: number;
}

export interface NativeChannel {
  readonly childFd: number;
  closeChild(): void;
  send(msg: string): void;
  recv(): Promise<string | null>;
  close(): void;
}

export interface Native {
  binding: NativeBinding;
  /** Absolute path of the tsbox-init executable. */
  initPath: string;
  /** Where both were found. */
  dir: string;
}

const require = createRequire(import.meta.url);
const here = dirname(fileURLToPath(import.meta.url));

/** `linux-x64-gnu`, `linux-arm64-musl`, ...; throws on a platform tsbox does not support. */
export function platformTriple(): string {
  const supported = 'tsbox runs on Linux x86_64 and aarch64 (glibc or musl)';
  if (process.platform !== 'linux') {
    throw new TsboxError({ step: 'load', errno: 0, path: process.platform, detail: `unsupported operating system`, hint: `${supported}; containers need Linux namespaces` });
  }
  if (process.arch !== 'x64' && process.arch !== 'arm64') {
    throw new TsboxError({ step: 'load', errno: 0, path: process.arch, detail: `unsupported architecture`, hint: supported });
  }
  const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined;
  const libc = report?.header?.glibcVersionRuntime ? 'gnu' : 'musl';
  return `linux-${process.arch}-${libc}`;
}

function candidates(triple: string): string[] {
  const dirs: string[] = [];
  if (process.env.TSBOX_NATIVE_DIR) dirs.push(process.env.TSBOX_NATIVE_DIR);
  try {
    dirs.push(dirname(require.resolve(`@tsbox/${triple}/package.json`)));
  } catch {
    // Not installed: fall through to a local build.
  }
  dirs.push(join(here, '..', 'native'));
  return dirs;
}

let cached: Native | undefined;

export function loadNative(): Native {
  if (cached) return cached;
  const triple = platformTriple();
  const tried: string[] = [];
  for (const dir of candidates(triple)) {
    const addon = join(dir, `tsbox.${triple}.node`);
    const initPath = join(dir, 'tsbox-init');
    tried.push(dir);
    if (!existsSync(addon) || !existsSync(initPath)) continue;
    const binding = require(addon) as NativeBinding;
    cached = { binding, initPath, dir };
    return cached;
  }
  throw new TsboxError({
    step: 'load',
    errno: 2,
    path: `tsbox.${triple}.node`,
    detail: `the native addon and tsbox-init were not found (looked in ${tried.join(', ')})`,
    hint: `install the platform package @tsbox/${triple}, or run \`npm run build\` in a checkout, or point TSBOX_NATIVE_DIR at a directory holding both`,
  });
}
