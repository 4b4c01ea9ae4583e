// TsboxError and exitCodeFor (ts/errors.ts): the one error type and the Docker
// exit status conventions.
import { describe, expect, it } from 'vitest';

import { errnoName, exitCodeFor, fromNativeReport, fromSystemError, printable, TsboxError } from '../../ts/errors.js';

const ENOENT = 2;
const EACCES = 13;
const ENOEXEC = 8;
const EPERM = 1;
const EINVAL = 22;

describe('exitCodeFor', () => {
  it('gives 127 when exec finds no such file', () => {
    expect(exitCodeFor('exec', ENOENT)).toBe(127);
  });

  it('gives 126 when exec finds the file but cannot execute it', () => {
    expect(exitCodeFor('exec', EACCES)).toBe(126);
    expect(exitCodeFor('exec', ENOEXEC)).toBe(126);
  });

  it('gives 125 for any other exec failure', () => {
    expect(exitCodeFor('exec', EPERM)).toBe(125);
    expect(exitCodeFor('exec', EINVAL)).toBe(125);
    expect(exitCodeFor('exec', 0)).toBe(125);
  });

  it('gives 125 for every other step, whatever the errno', () => {
    for (const step of ['config', 'pivot_root', 'open_rootfs', 'setgroups', 'uid_map', 'mount']) {
      expect(exitCodeFor(step, ENOENT)).toBe(125);
      expect(exitCodeFor(step, EACCES)).toBe(125);
      expect(exitCodeFor(step, ENOEXEC)).toBe(125);
      expect(exitCodeFor(step, 0)).toBe(125);
    }
  });

  it('matches the step name exactly', () => {
    expect(exitCodeFor('Exec', ENOENT)).toBe(125);
    expect(exitCodeFor('execve', ENOENT)).toBe(125);
  });
});

describe('TsboxError', () => {
  it('formats `step(path): ENAME — detail` and carries every field', () => {
    const e = new TsboxError({ step: 'pivot_root', errno: EINVAL, path: '/var/lib/x/rootfs', detail: 'the rootfs must be a mount', hint: 'bind it' });
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe('TsboxError');
    expect(e.message).toBe('pivot_root(/var/lib/x/rootfs): EINVAL — the rootfs must be a mount');
    expect(e.step).toBe('pivot_root');
    expect(e.errno).toBe(EINVAL);
    expect(e.path).toBe('/var/lib/x/rootfs');
    expect(e.hint).toBe('bind it');
    expect(e.issues).toEqual([]);
    expect(e.exitCode).toBe(125);
  });

  it('formats `step(path): detail` when errno is 0', () => {
    const e = new TsboxError({ step: 'config', errno: 0, path: 'cwd', detail: 'must be absolute' });
    expect(e.message).toBe('config(cwd): must be absolute');
    expect(e.message).not.toMatch(/error|—/);
  });

  it('leaves out the parentheses when there is no path', () => {
    expect(new TsboxError({ step: 'clone', errno: EPERM, detail: 'no user namespaces' }).message).toBe('clone: EPERM — no user namespaces');
    expect(new TsboxError({ step: 'clone', errno: EPERM, path: null, detail: 'x' }).path).toBeUndefined();
    expect(new TsboxError({ step: 'config', errno: 0, path: '', detail: 'x' }).message).toBe('config: x');
  });

  it('names an errno it has no name for by number', () => {
    expect(new TsboxError({ step: 'mount', errno: 999, path: '/x', detail: 'odd' }).message).toBe('mount(/x): errno 999 — odd');
    expect(errnoName(ENOENT)).toBe('ENOENT');
    expect(errnoName(20)).toBe('ENOTDIR');
  });

  it("names every errno Linux defines, from the Rust side's one table (no EUNKNOWN)", () => {
    expect(errnoName(97)).toBe('EAFNOSUPPORT');
    expect(errnoName(34)).toBe('ERANGE');
    expect(errnoName(133)).toBe('EHWPOISON');
    for (let n = 1; n <= 133; n++) if (n !== 41 && n !== 58) expect(errnoName(n), String(n)).toMatch(/^E[A-Z0-9]+$/);
  });

  it('takes its exit code from the step and errno', () => {
    expect(new TsboxError({ step: 'exec', errno: ENOENT, path: 'nosuch', detail: 'not found' }).exitCode).toBe(127);
    expect(new TsboxError({ step: 'exec', errno: EACCES, path: '/etc', detail: 'denied' }).exitCode).toBe(126);
    expect(new TsboxError({ step: 'config', errno: 0, detail: 'bad' }).exitCode).toBe(125);
  });

  it('toLine() appends the hint after "; ", and is the message alone without one', () => {
    const withHint = new TsboxError({ step: 'exec', errno: ENOENT, path: 'nosuch', detail: 'not found', hint: 'check PATH' });
    expect(withHint.toLine()).toBe('exec(nosuch): ENOENT — not found; check PATH');
    const noHint = new TsboxError({ step: 'exec', errno: ENOENT, path: 'nosuch', detail: 'not found', hint: null });
    expect(noHint.toLine()).toBe('exec(nosuch): ENOENT — not found');
    expect(noHint.hint).toBeUndefined();
  });

  it('renders hostile text in its path, detail and hint with no control byte: ESC, CSI (7- and 8-bit), OSC, newline, bidi overrides', () => {
    const hostile = 'a\u001b[2J\u001b]0;PWNED\u0007\u009b31m\r\n\u202eb';
    const shown = 'a\\x1b[2J\\x1b]0;PWNED\\x07\\x9b31m\\x0d\\x0a\\u{202e}b';
    const e = new TsboxError({ step: 'load', errno: ENOENT, path: `/x/${hostile}`, detail: `no ${hostile}`, hint: `see ${hostile}` });
    expect(e.message).toBe(`load(/x/${shown}): ENOENT — no ${shown}`);
    expect(e.toLine()).toBe(`load(/x/${shown}): ENOENT — no ${shown}; see ${shown}`);
    // Nothing of C0, DEL, C1 or the bidirectional controls is left.
    expect(e.toLine()).not.toMatch(/[\p{Cc}\u202a-\u202e\u2066-\u2069]/u);
    // The fields keep the text as it was, for a caller that wants it.
    expect(e.path).toBe(`/x/${hostile}`);
    expect(e.hint).toBe(`see ${hostile}`);
    // Text made printable() by its caller is shown as it is, not escaped twice.
    expect(new TsboxError({ step: 'load', errno: 0, path: printable(hostile), detail: 'x' }).message).toBe(`load(${printable(hostile)}): x`);
    // The unpacker's report (a layer's file name) and a system error's message alike.
    expect(fromNativeReport(new Error(JSON.stringify({ errno: 1, path: hostile, detail: 'refused', hint: null })), 'unpack', 'layer').toLine()).toBe(`unpack(layer: ${shown}): EPERM — refused`);
    expect(fromSystemError('store', Object.assign(new Error(`EACCES: ${hostile}`), { errno: -13, path: hostile }), 'read').toLine()).toBe(`store(${shown}): EACCES — read (EACCES: ${shown})`);
  });

  it('keeps issues and the cause it is given', () => {
    const cause = new Error('inner');
    const issues = [{ path: 'env.A=B', message: 'bad name' }];
    const e = new TsboxError({ step: 'config', errno: 0, path: 'env.A=B', detail: 'bad name' }, { cause, issues });
    expect(e.issues).toEqual(issues);
    expect(e.cause).toBe(cause);
  });
});

describe('fromSystemError', () => {
  it('wraps a Node system error with its positive errno, path, message and hint', () => {
    const sys = Object.assign(new Error("ENOENT: no such file or directory, open '/nope'"), { errno: -2, code: 'ENOENT', path: '/nope' });
    const e = fromSystemError('open_rootfs', sys, 'open /nope', 'create it');
    expect(e).toBeInstanceOf(TsboxError);
    expect(e.step).toBe('open_rootfs');
    expect(e.errno).toBe(ENOENT);
    expect(e.path).toBe('/nope');
    expect(e.hint).toBe('create it');
    expect(e.cause).toBe(sys);
    expect(e.message).toBe("open_rootfs(/nope): ENOENT — open /nope (ENOENT: no such file or directory, open '/nope')");
  });

  it('gives errno 0 for something that is not a system error', () => {
    const e = fromSystemError('state', 'a string', 'read state');
    expect(e.errno).toBe(0);
    expect(e.path).toBeUndefined();
    expect(e.hint).toBeUndefined();
    expect(e.message).toBe('state: read state');
  });
});

describe('startFailure: a container that died during its setup', () => {
  const report = { step: 'start', errno: 0, path: null, detail: "the container's first process was killed by signal 9 (SIGKILL) during its setup, before the command started", hint: 'SIGKILL during setup is most often the OOM killer' };
  const cgroup = (oomKills: number | null) => ({
    usage: () => ({ peakMemoryBytes: 0, oomKills, peakPids: null, cpuThrottledPeriods: null }),
  });

  it('names the OOM killer and the limit when its cgroup counted a kill', async () => {
    const { startFailure } = await import('../../ts/runtime/launch.js');
    const e = startFailure(report, cgroup(1), { memory: 8 * 1024 * 1024 });
    expect(e.step).toBe('start');
    expect(e.exitCode).toBe(125);
    expect(e.errno).toBe(12);
    expect(e.message).toBe('start: ENOMEM — the container was killed by the OOM killer during its setup, before the command started (memory limit 8388608 bytes)');
    expect(e.hint).toBe('the memory limit must leave the container a few MB to start in: raise -m/memory');
  });

  it('keeps the report as it is without an OOM kill, or without a cgroup', async () => {
    const { startFailure } = await import('../../ts/runtime/launch.js');
    expect(startFailure(report, cgroup(0), { memory: undefined }).message).toBe(`start: ${report.detail}`);
    expect(startFailure(report, null, { memory: undefined }).hint).toBe(report.hint);
  });
});

describe('noCgroupNote: an ordinary user without a cgroup (issue 19, item 6)', () => {
  it('points at the missing session when there is none, and at delegation when there is one', async () => {
    const { noCgroupNote } = await import('../../ts/runtime/launch.js');
    const refused = 'cgroup(/sys/fs/cgroup/user.slice/tsbox): EACCES — create the tsbox cgroup';
    expect(noCgroupNote(refused, {}, 1000, () => false)).toBe(
      `tsbox: note: no cgroup for this container (${refused}); the default pids limit does not apply — you have no systemd user session here ($XDG_RUNTIME_DIR is unset and /run/user/1000 does not exist), which is what gives a user a cgroup of its own: log in through a session (ssh, a desktop), or run \`sudo loginctl enable-linger $USER\``,
    );
    const delegate = / — to get limits, run tsbox in a cgroup delegated to you: `systemd-run --user --scope -p Delegate=yes tsbox \.\.\.` \(tsbox does not yet ask systemd for one itself\)$/;
    expect(noCgroupNote(refused, { XDG_RUNTIME_DIR: '/run/user/1000' }, 1000, () => false)).toMatch(delegate);
    expect(noCgroupNote(refused, {}, 1000, (p) => p === '/run/user/1000')).toMatch(delegate);
  });
});

describe('TsboxError.code (issue 19)', () => {
  it('is TSBOX_ and the step, with the errno name when a system call failed', () => {
    expect(new TsboxError({ step: 'config', errno: 0, detail: 'x' }).code).toBe('TSBOX_CONFIG');
    expect(new TsboxError({ step: 'open_rootfs', errno: 2, detail: 'x' }).code).toBe('TSBOX_OPEN_ROOTFS_ENOENT');
    expect(new TsboxError({ step: 'exec', errno: 13, detail: 'x' }).code).toBe('TSBOX_EXEC_EACCES');
    expect(new TsboxError({ step: 'cgroup', errno: 9999, detail: 'x' }).code).toBe('TSBOX_CGROUP_ERRNO_9999');
  });
});
