/**
 * The loader (ts/native.ts) on its own: the platform it picks, the order it
 * looks in, and the one-line errors it gives. Works on stand-in files: locating
 * the native parts does not load them.
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { TsboxError } from '../../ts/errors.js';
import { detectLibc, locateNative, nativeCandidates, PLATFORMS, platformTriple } from '../../ts/native.js';

const REPO = resolve(import.meta.dirname, '..', '..');

function thrown(fn: () => unknown): TsboxError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(TsboxError);
    return err as TsboxError;
  }
  throw new Error('expected a TsboxError, nothing was thrown');
}

describe('platformTriple', () => {
  it.each([
    ['linux', 'x64', 'gnu', 'linux-x64-gnu'],
    ['linux', 'arm64', 'gnu', 'linux-arm64-gnu'],
    ['linux', 'x64', 'musl', 'linux-x64-musl'],
    ['linux', 'arm64', 'musl', 'linux-arm64-musl'],
  ] as const)('%s %s %s → %s, a platform tsbox ships', (os, arch, libc, want) => {
    expect(platformTriple(os, arch, () => libc)).toBe(want);
    expect(PLATFORMS).toContain(want);
  });

  it.each([
    ['darwin', 'arm64', 'load(darwin-arm64): macOS is not supported; tsbox runs on Linux x86_64 and aarch64, with glibc or musl: containers are made of Linux namespaces (use a Linux VM)'],
    ['win32', 'x64', 'load(win32-x64): Windows is not supported; tsbox runs on Linux x86_64 and aarch64, with glibc or musl: containers are made of Linux namespaces (use a Linux VM or WSL 2)'],
    ['freebsd', 'x64', 'load(freebsd-x64): freebsd is not supported; tsbox runs on Linux x86_64 and aarch64, with glibc or musl'],
    ['linux', 'ia32', 'load(linux-ia32): 32-bit ia32 is not supported; tsbox runs on Linux x86_64 and aarch64, with glibc or musl'],
    ['linux', 'arm', 'load(linux-arm): 32-bit arm is not supported; tsbox runs on Linux x86_64 and aarch64, with glibc or musl'],
    ['linux', 'riscv64', 'load(linux-riscv64): the riscv64 architecture is not supported; tsbox runs on Linux x86_64 and aarch64, with glibc or musl'],
  ] as const)('%s %s: one line naming what is supported', (os, arch, line) => {
    const err = thrown(() => platformTriple(os, arch, () => 'gnu'));
    expect(err.toLine()).toBe(line);
    expect(err.exitCode).toBe(125);
  });

  it("detects this Node's C library as Node's own report tells it", () => {
    const report = process.report.getReport() as { header?: { glibcVersionRuntime?: string } };
    expect(detectLibc()).toBe(report.header?.glibcVersionRuntime ? 'gnu' : 'musl');
  });
});

describe('locateNative', () => {
  const platform = 'linux-x64-gnu';
  let dir = '';

  /** A stand-in native directory: an addon and a helper with the given mode. */
  function nativeDir(name: string, { addon = true, init = 0o755 as number | null } = {}): string {
    const d = join(dir, name);
    mkdirSync(d);
    if (addon) writeFileSync(join(d, `tsbox.${platform}.node`), '');
    if (init !== null) {
      writeFileSync(join(d, 'tsbox-init'), '#!/bin/sh\n');
      chmodSync(join(d, 'tsbox-init'), init);
    }
    return d;
  }

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'tsbox-loader-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('looks in a checkout build before the platform package', () => {
    const c = nativeCandidates(platform, {});
    expect(c[0]).toEqual({ dir: join(REPO, 'native'), source: 'checkout' });
    expect(c.slice(1).every((x) => x.source === 'package')).toBe(true);
  });

  it('uses TSBOX_NATIVE_DIR, and only it, when it is set', () => {
    const d = nativeDir('override');
    expect(nativeCandidates(platform, { TSBOX_NATIVE_DIR: d })).toEqual([{ dir: d, source: 'override' }]);
    expect(locateNative(platform, { TSBOX_NATIVE_DIR: d })).toEqual({ addonPath: join(d, `tsbox.${platform}.node`), initPath: join(d, 'tsbox-init'), dir: d, source: 'override', platform });
  });

  it('fails on a TSBOX_NATIVE_DIR that does not exist, rather than loading something else', () => {
    const err = thrown(() => locateNative(platform, { TSBOX_NATIVE_DIR: join(dir, 'nope') }));
    expect(err.errno).toBe(2);
    expect(err.toLine()).toBe(`load(${join(dir, 'nope')}): ENOENT — TSBOX_NATIVE_DIR does not exist; point TSBOX_NATIVE_DIR at a directory holding both, or unset it to use the installed @tsbox/${platform}`);
  });

  it('fails on a TSBOX_NATIVE_DIR without the addon', () => {
    const d = nativeDir('other', { addon: false });
    const err = thrown(() => locateNative(platform, { TSBOX_NATIVE_DIR: d }));
    expect(err.path).toBe(join(d, `tsbox.${platform}.node`));
    expect(err.message).toContain(`TSBOX_NATIVE_DIR holds no tsbox.${platform}.node`);
  });

  it('names the missing helper when only the addon is there', () => {
    const d = nativeDir('half', { init: null });
    const err = thrown(() => locateNative(platform, { TSBOX_NATIVE_DIR: d }));
    expect(err.path).toBe(join(d, 'tsbox-init'));
    expect(err.message).toContain('tsbox-init is missing beside the addon');
  });

  it('says when tsbox-init lost its run bit', () => {
    const d = nativeDir('modes', { init: 0o644 });
    const err = thrown(() => locateNative(platform, { TSBOX_NATIVE_DIR: d }));
    expect(err.errno).toBe(13);
    expect(err.path).toBe(join(d, 'tsbox-init'));
    expect(err.toLine()).toContain('tsbox-init is not executable (mode 0644); its run bit was lost on the way');
  });

  it('on a platform with nothing installed, the error names where it looked and what to install', () => {
    // No checkout build and no package exist for this platform.
    const err = thrown(() => locateNative('linux-arm64-musl', {}));
    expect(err.toLine()).toMatch(/^load\(@tsbox\/linux-arm64-musl\): ENOENT — the native addon and tsbox-init were not found \(looked in .*native\); install @tsbox\/linux-arm64-musl/);
    expect(err.toLine()).not.toContain('\n');
  });
});
