/**
 * The state directory is used only when it is the user's own (ts/state-root.ts):
 * in the temporary directory another user may have made it first.
 */
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, afterEach, describe, expect, it } from 'vitest';

import { defaultStateDir } from '../../ts/cgroups/gc.js';
import { gcStates, listStates, liveState, readState, removeContainerDir, type ContainerState } from '../../ts/runtime/state.js';
import { processStart } from '../../ts/proc.js';
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
  const nobody = 65534;

  it("is refused, to read as well as to write, when it is not the caller's own (a state.json there names hooks delete runs as root)", () => {
    const root = join(scratch, 'planted');
    mkdirSync(root);
    chownSync(root, nobody, nobody);
    chmodSync(root, 0o777);
    chooseStateRoot(root);
    expect(() => stateRoot(me)).toThrow(expect.objectContaining({
      message: expect.stringMatching(new RegExp(`^state\\(${root}\\): EPERM — the state directory belongs to uid ${nobody}, not to this user \\(${me}\\)`)),
      hint: expect.stringMatching(/^--root must name a directory of your own/),
    }));
    expect(() => ensureStateRoot(undefined, me)).toThrow(/belongs to uid 65534/);
  });

  it('is refused when a directory above it may be changed by another user (they could put a root of theirs in its place)', () => {
    const theirs = join(scratch, 'their-parent');
    mkdirSync(join(theirs, 'root'), { recursive: true, mode: 0o700 });
    chownSync(theirs, nobody, nobody);
    chmodSync(theirs, 0o755);
    chooseStateRoot(join(theirs, 'root'));
    expect(() => stateRoot(me)).toThrow(new RegExp(`^state\\(${theirs}\\): EPERM — the state directory ${theirs}/root is in ${theirs}, which belongs to uid ${nobody}: they may replace what is in it`));
    const open = join(scratch, 'open-parent');
    mkdirSync(open);
    chmodSync(open, 0o777);
    // Missing below it: refused before it is made.
    chooseStateRoot(join(open, 'a', 'root'));
    expect(() => ensureStateRoot(undefined, me)).toThrow(/which others may write \(mode 777\)/);
    expect(existsSync(join(open, 'a'))).toBe(false);
  });

  it('is taken in a sticky directory all may write (as /tmp), made private with what is missing above it, and resolved through symlinks', () => {
    const sticky = join(scratch, 'sticky');
    mkdirSync(sticky);
    chmodSync(sticky, 0o1777);
    chooseStateRoot(join(sticky, 'a', 'root'));
    const root = ensureStateRoot(undefined, me);
    expect(root).toBe(join(sticky, 'a', 'root'));
    expect(lstatSync(join(sticky, 'a')).mode & 0o777).toBe(0o700);
    expect(lstatSync(root).mode & 0o777).toBe(0o700);
    symlinkSync(join(sticky, 'a'), join(scratch, 'to-a'));
    chooseStateRoot(join(scratch, 'to-a', 'root'));
    expect(stateRoot(me)).toBe(root);
  });

  it('keeps the id registry and the cgroup markers in the default root: one per host for root, whatever root each caller chose', () => {
    chooseStateRoot(join(scratch, 'elsewhere-root'));
    expect(stateRoot(me)).toBe(join(scratch, 'elsewhere-root'));
    expect(defaultStateRoot(me)).not.toBe(join(scratch, 'elsewhere-root'));
    expect(defaultStateDir()).toBe(join(defaultStateRoot(), 'cgroups'));
    if (me === 0) expect(defaultStateDir()).toBe('/run/tsbox/cgroups');
  });
});

describe("a container's state directory", () => {
  /** A state directory as tsbox makes it, with the state of a container whose monitor is `monitorPid`. */
  function containerWith(name: string, monitorPid: number): { dir: string; state: ContainerState } {
    const dir = join(scratch, name);
    mkdirSync(dir, { mode: 0o700 });
    const state = { ociVersion: '1.2.0', id: name, status: 'running', pid: monitorPid, bundle: '/', annotations: {}, name: null, created: new Date().toISOString(), monitorPid, callerPid: 0, detached: true, command: ['sleep'], options: {}, log: null } as ContainerState;
    writeFileSync(join(dir, 'state.json'), JSON.stringify(state));
    return { dir, state };
  }

  it("takes a monitor for alive only when its pid's process started when the recorded one did (a pid may be reused); without a record, by the pid", () => {
    // This process stands for the monitor: alive, with a known start time.
    const id = 'b'.repeat(64);
    const { dir, state } = containerWith(id, process.pid);
    expect(liveState(state).status).toBe('running');
    const start = processStart(process.pid)!;
    expect(start).toMatch(/^\d+$/);
    expect(liveState({ ...state, monitorStart: start }).status).toBe('running');
    // The same pid, another process: the monitor recorded started at another time.
    const reused = { ...state, monitorStart: '1' };
    writeFileSync(join(dir, 'state.json'), JSON.stringify(reused));
    expect(liveState(reused)).toMatchObject({ status: 'stopped', exitCode: 137, error: 'its monitor is gone' });
    expect(listStates(scratch).find((c) => c.state.id === id)?.state.status).toBe('stopped');
    // Nobody keeps it: gc takes its state.
    expect(gcStates(scratch)).toEqual([id]);
    expect(existsSync(dir)).toBe(false);
  });

  it('is never followed when it is a symlink: its state is not read, and nothing is removed through it', () => {
    const { dir: target } = containerWith('real-target', process.pid);
    writeFileSync(join(target, 'config.json'), 'kept');
    const link = join(scratch, 'a'.repeat(64));
    symlinkSync(target, link);
    expect(readState(link)).toBeNull();
    expect(listStates(scratch).map((c) => c.dir)).not.toContain(link);
    expect(() => removeContainerDir(link)).toThrow(new RegExp(`^state\\(${link}\\): EPERM — the container's state directory is a symlink`));
    expect(readdirSync(target).sort()).toEqual(['config.json', 'state.json']);
    expect(readState(target)?.id).toBe('real-target');
  });
});
