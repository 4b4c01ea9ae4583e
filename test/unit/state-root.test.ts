/**
 * The state directory is used only when it is the user's own (ts/state-root.ts):
 * in the temporary directory another user may have made it first.
 */
import { chmodSync, chownSync, lstatSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, afterEach, describe, expect, it } from 'vitest';

import { defaultStateDir } from '../../ts/cgroups/gc.js';
import { chooseStateRoot, defaultStateRoot, ensureStateRoot, stateRoot } from '../../ts/state-root.js';

const scratch = mkdtempSync(join(tmpdir(), 'tsbox-test-state-root-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
const me = process.getuid?.() ?? 0;

describe('stateRoot', () => {
  it('is /run/tsbox for root, XDG_RUNTIME_DIR/tsbox for a user who has one, else a per-user directory', () => {
    expect(stateRoot(0, {})).toBe('/run/tsbox');
    expect(stateRoot(1000, { XDG_RUNTIME_DIR: '/run/user/1000' })).toBe('/run/user/1000/tsbox');
    expect(stateRoot(4_000_000, {})).toBe(join(tmpdir(), 'tsbox-state-4000000'));
  });
});

describe('ensureStateRoot', () => {
  it('root of a user namespace an ordinary user made (rootless podman) is that user: its XDG_RUNTIME_DIR, unless USER says root (runc\'s rule)', () => {
    const env = { XDG_RUNTIME_DIR: '/run/user/1000', USER: 'alice' };
    expect(stateRoot(0, env, () => true)).toBe('/run/user/1000/tsbox');
    expect(stateRoot(0, { ...env, USER: 'root' }, () => true)).toBe('/run/tsbox');
    expect(stateRoot(0, { USER: 'alice' }, () => true)).toBe('/run/tsbox');
    // The host's root is root, whatever its environment says.
    expect(stateRoot(0, env, () => false)).toBe('/run/tsbox');
  });

  it("is never another user's, even to read: the per-user directory in the temporary directory is refused when someone else made it", () => {
    const saved = process.env.TMPDIR;
    process.env.TMPDIR = scratch;
    try {
      const theirs = join(scratch, 'tsbox-state-4000002');
      mkdirSync(theirs, { mode: 0o700 });
      chownSync(theirs, 4_000_003, 4_000_003);
      expect(() => stateRoot(4_000_002, {})).toThrow(/belongs to uid 4000003, not to this user \(4000002\)/);
      // Missing: the path, for whoever needs it to make it (ensureStateRoot).
      expect(stateRoot(4_000_004, {})).toBe(join(scratch, 'tsbox-state-4000004'));
    } finally {
      if (saved === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = saved;
    }
  });

  it('makes a missing directory private to its user', () => {
    const root = join(scratch, 'fresh');
    expect(ensureStateRoot(root, me)).toBe(root);
    const st = lstatSync(root);
    expect(st.isDirectory()).toBe(true);
    expect(st.mode & 0o777).toBe(0o700);
  });

  it('refuses a symlink another user left in its place', () => {
    const target = join(scratch, 'elsewhere');
    mkdirSync(target, { mode: 0o700 });
    const root = join(scratch, 'link');
    symlinkSync(target, root);
    expect(() => ensureStateRoot(root, me)).toThrow(expect.objectContaining({
      message: expect.stringMatching(/^state\(.*\/link\): ENOTDIR — the state directory is not a directory \(a symlink\?\)/),
      hint: expect.stringMatching(/XDG_RUNTIME_DIR/),
    }));
  });

  it("refuses a directory of another user's", () => {
    const root = join(scratch, 'theirs');
    mkdirSync(root, { mode: 0o700 });
    chownSync(root, 4_000_001, 4_000_001);
    expect(() => ensureStateRoot(root, me)).toThrow(/belongs to uid 4000001, not to this user/);
  });

  it('refuses a directory others may write', () => {
    const root = join(scratch, 'open');
    mkdirSync(root);
    chmodSync(root, 0o777);
    expect(() => ensureStateRoot(root, me)).toThrow(/writable by others \(mode 777\)/);
  });
});

describe('a root chosen with --root', () => {
  afterEach(() => chooseStateRoot(undefined));

  it('keeps the id registry and the cgroup markers in the default root: one per host for root, whatever root each caller chose', () => {
    chooseStateRoot(join(scratch, 'elsewhere-root'));
    expect(stateRoot(me)).toBe(join(scratch, 'elsewhere-root'));
    expect(defaultStateRoot(me)).not.toBe(join(scratch, 'elsewhere-root'));
    expect(defaultStateDir()).toBe(join(defaultStateRoot(), 'cgroups'));
    if (me === 0) expect(defaultStateDir()).toBe('/run/tsbox/cgroups');
  });
});
