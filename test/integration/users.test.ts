/**
 * Users and privilege (issue 4): id-mapping modes, the container user,
 * capabilities and no_new_privs, asserted from inside through the probe; and
 * rootless runs as real unprivileged users that the suite creates and removes.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';

import { cli, waitForOutput, type ProbeInfo } from '../support/tsbox.js';

const rootfs = inject('rootfs');

/** The capability mask of a list of names (CAP_CHOWN is bit 0, ...). */
const BITS: Record<string, number> = {
  CHOWN: 0, DAC_OVERRIDE: 1, FOWNER: 3, FSETID: 4, KILL: 5, SETGID: 6, SETUID: 7, SETPCAP: 8, NET_BIND_SERVICE: 10,
  NET_ADMIN: 12, NET_RAW: 13, SYS_CHROOT: 18, SYS_PTRACE: 19, SYS_ADMIN: 21, MKNOD: 27, AUDIT_WRITE: 29, SETFCAP: 31,
};
const mask = (names: string[]) => names.reduce((m, n) => m | (1n << BigInt(BITS[n]!)), 0n).toString(16).padStart(16, '0');
const DEFAULT = ['CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'KILL', 'NET_BIND_SERVICE', 'NET_RAW', 'SETGID', 'SETPCAP', 'SETUID', 'SYS_CHROOT'];

async function probe(args: string[], opts: Parameters<typeof cli>[1] = {}): Promise<ProbeInfo> {
  const r = await cli(['run', '--rootfs', rootfs, ...args, '--', 'tsbox-probe', 'info'], opts);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as ProbeInfo;
}

const caps = (i: ProbeInfo) => [i.status.CapBnd, i.status.CapPrm, i.status.CapEff, i.status.CapInh, i.status.CapAmb];

describe('capabilities', () => {
  it('keeps the default allowlist in bounding, permitted and effective; nothing inheritable or ambient', async () => {
    expect(caps(await probe([]))).toEqual([mask(DEFAULT), mask(DEFAULT), mask(DEFAULT), mask([]), mask([])]);
  });

  it('adds with --cap-add (with or without the CAP_ prefix)', async () => {
    const want = mask([...DEFAULT, 'NET_ADMIN']);
    expect(caps(await probe(['--cap-add', 'NET_ADMIN']))).toEqual([want, want, want, mask([]), mask([])]);
    expect((await probe(['--cap-add', 'cap_net_admin'])).status.CapEff).toBe(want);
  });

  it('drops everything with --cap-drop ALL', async () => {
    expect(caps(await probe(['--cap-drop', 'ALL']))).toEqual([mask([]), mask([]), mask([]), mask([]), mask([])]);
    expect(caps(await probe(['--cap-drop', 'ALL', '--cap-add', 'KILL']))).toEqual([mask(['KILL']), mask(['KILL']), mask(['KILL']), mask([]), mask([])]);
  });

  it('gives a non-root user the bounding set but no permitted or effective capabilities (OCI/Docker)', async () => {
    const i = await probe(['--user', 'tester', '--cap-add', 'NET_ADMIN']);
    expect(i.uid).toBe(1000);
    expect(caps(i)).toEqual([mask([...DEFAULT, 'NET_ADMIN']), mask([]), mask([]), mask([]), mask([])]);
  });

  it('rejects an unknown capability, naming it', async () => {
    const r = await cli(['run', '--rootfs', rootfs, '--cap-add', 'NET_ADMIN', '--cap-drop', 'SUPERPOWER', '--', 'true']);
    expect(r.code).toBe(125);
    expect(r.stderr).toMatch(/^tsbox: config\(--cap-drop \S+\): unknown capability/);
  });
});

describe('no_new_privs and setuid binaries', () => {
  let suidRoot: string;
  beforeAll(async () => {
    suidRoot = await fs.mkdtemp(join(tmpdir(), 'tsbox-test-suid-'));
    await fs.chmod(suidRoot, 0o755);
    await fs.cp(rootfs, suidRoot, { recursive: true, verbatimSymlinks: true });
    const p = join(suidRoot, 'usr/bin/suid-probe');
    await fs.copyFile(join(suidRoot, 'usr/bin/tsbox-probe'), p);
    await fs.chown(p, 0, 0);
    await fs.chmod(p, 0o4755);
  });
  afterAll(async () => {
    await fs.rm(suidRoot, { recursive: true, force: true });
  });

  const suid = async (...args: string[]) => {
    const r = await cli(['run', '--rootfs', suidRoot, '--user', 'tester', ...args, '--', 'suid-probe', 'info']);
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout) as ProbeInfo & { euid: number };
  };

  it('is on by default, and a setuid-root binary gains nothing', async () => {
    const i = await suid();
    expect(i.status.NoNewPrivs).toBe(1);
    expect(i.euid).toBe(1000);
    expect(i.status.CapEff).toBe(mask([]));
  });

  it('can be turned off, and then setuid works (so the test above means something)', async () => {
    const i = await suid('--security-opt', 'no-new-privileges=false');
    expect(i.status.NoNewPrivs).toBe(0);
    expect(i.euid).toBe(0);
  });
});

describe('the container user', () => {
  it('resolves a name through the rootfs, with its home and groups', async () => {
    const r = await cli(['run', '--rootfs', rootfs, '--user', 'tester', '--group-add', 'nogroup', '--', 'sh', '-c', 'id -u; id -g; id -G; echo $HOME']);
    expect(r.stdout.trim().split('\n')).toEqual(['1000', '1000', '1000 65534', '/home/tester']);
  });

  it('takes numeric ids that the rootfs does not know', async () => {
    const r = await cli(['run', '--rootfs', rootfs, '-u', '4242:4343', '--', 'sh', '-c', 'id -u; id -g; echo $HOME']);
    expect(r.stdout.trim().split('\n')).toEqual(['4242', '4343', '/']);
  });

  it('names a user the rootfs does not have', async () => {
    const r = await cli(['run', '--rootfs', rootfs, '--user', 'mallory', '--', 'true']);
    expect(r.code).toBe(125);
    expect(r.stderr).toMatch(/^tsbox: user\(mallory\): EINVAL — no user named mallory in the container's \/etc\/passwd/);
  });
});

describe('id maps as root', () => {
  it('gives two live containers disjoint ranges, and frees them afterwards', async () => {
    const start = () => {
      let resolveMap!: (m: string) => void;
      const map = new Promise<string>((r) => (resolveMap = r));
      const done = cli(['run', '--rootfs', rootfs, '--', 'sh', '-c', 'cat /proc/self/uid_map; echo ready; read x'], {
        onSpawn: (child) => {
          let out = '';
          child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
          void waitForOutput(child, 'ready').then(() => {
            resolveMap(out.split('ready')[0]!.trim());
            setTimeout(() => child.stdin!.end('go\n'), 300);
          });
        },
        keepStdinOpen: true,
      });
      return { map, done };
    };
    const a = start();
    const b = start();
    const [ma, mb] = await Promise.all([a.map, b.map]);
    const host = (m: string) => Number(m.split(/\s+/)[1]);
    expect(Math.abs(host(ma) - host(mb))).toBeGreaterThanOrEqual(65536);
    await Promise.all([a.done, b.done]);
  });

  it('refuses one explicit map without the other (the missing one would map root to root)', async () => {
    const r = await cli(['run', '--rootfs', rootfs, '--gidmap', '0:100000:65536', '--', 'true']);
    expect(r.code).toBe(125);
    expect(r.stderr).toMatch(/^tsbox: config\(uidMap\): uidMap and gidMap \(--uidmap, --gidmap\) go together/);
  });

  it('takes explicit maps', async () => {
    const i = await probe(['--uidmap', '0:300000:1000', '--gidmap', '0:400000:2000']);
    expect(i.uidMap).toEqual([[0, 300000, 1000]]);
    expect(i.gidMap).toEqual([[0, 400000, 2000]]);
  });

  it("shares the host's user namespace with --userns host (real root)", async () => {
    const i = await probe(['--userns', 'host']);
    expect(i.uidMap).toEqual([[0, 0, 4294967295]]);
    expect(i.uid).toBe(0);
    // Still without the capabilities the seed drops.
    expect(i.status.CapBnd).toBe(mask(DEFAULT));
  });
});

describe('rootless', () => {
  const user = `tsbox-test-${process.pid}`;
  let uid = 0;
  let subuid = 0;
  beforeAll(() => {
    // Debian's useradd gives a new user a subordinate id range (SUB_UID_* in login.defs).
    execFileSync('useradd', ['-M', '-s', '/bin/sh', user]);
    uid = Number(execFileSync('id', ['-u', user]).toString().trim());
    const line = execFileSync('grep', [`^${user}:`, '/etc/subuid']).toString().trim();
    subuid = Number(line.split(':')[1]);
  });
  afterAll(() => {
    execFileSync('userdel', [user]);
  });

  it('maps the user to root plus its /etc/subuid range through newuidmap', async () => {
    const r = await cli(['run', '--rootfs', rootfs, '--', 'tsbox-probe', 'info'], { uid, gid: uid });
    // No id-map notice; only the one about cgroups, which this host delegates to no user.
    expect(r.stderr).not.toMatch(/only your own uid/);
    expect(r.stderr).toMatch(/^(tsbox: note: no cgroup for this container .*\n)?$/);
    const i = JSON.parse(r.stdout) as ProbeInfo;
    expect(i.uid).toBe(0);
    expect(i.uidMap).toEqual([[0, uid, 1], [1, subuid, 65535]]);
    expect(i.gidMap[0]).toEqual([0, uid, 1]);
    expect(i.gidMap[1]![2]).toBe(65535);
    expect(i.status.CapEff).toBe(mask(DEFAULT));
    expect(i.status.NoNewPrivs).toBe(1);
    // Full namespaces.
    expect(i.pid).toBe(2);
    expect(i.interfaces).toEqual(['lo']);
  });

  it('is refused a limit it cannot apply, never silently', async () => {
    const r = await cli(['run', '--rootfs', rootfs, '--memory', '64m', '--', 'true'], { uid, gid: uid });
    if (r.code === 0) {
      // A host that delegates cgroups to the user: the limit must then be in place.
      const inside = await cli(['run', '--rootfs', rootfs, '--memory', '64m', '--', 'sh', '-c', 'cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null'], { uid, gid: uid });
      expect(inside.stdout).toContain(String(64 * 1024 * 1024));
    } else {
      expect(r.code).toBe(125);
      expect(r.stderr).toMatch(/^tsbox: cgroup\(/);
    }
  });

  it("keeps PID 1's descriptors out of the container's reach, and passes none of the caller's", async () => {
    // The init never execs and runs as the same user here: it must not be readable.
    // ls writes straight to stdout (a pipe would put its own ends among the
    // shell's fds) and is not the last command (the shell would exec it, and
    // $$ would be ls, with its directory open).
    const r = await cli(['run', '--rootfs', rootfs, '--', 'sh', '-c', 'ls /proc/1/fd >/dev/null 2>&1 && echo readable || echo closed; ls /proc/$$/fd; true'], { uid, gid: uid });
    const [first, ...fds] = r.stdout.trim().split('\n');
    expect(first).toBe('closed');
    // The shell's own fds: 0-2 (and 10, where ash keeps a copy); nothing inherited.
    expect(fds.map(Number).filter((fd) => fd > 2 && fd !== 10)).toEqual([]);
  });

  it('runs a container user from the range', async () => {
    const r = await cli(['run', '--rootfs', rootfs, '--user', 'tester', '--', 'sh', '-c', 'id -u; cat /proc/self/uid_map | wc -l'], { uid, gid: uid });
    expect(r.stdout.trim().split('\n')).toEqual(['1000', '2']);
  });

  it('falls back to a single mapping, with a one-line notice, for a user without a range', async () => {
    const r = await cli(['run', '--rootfs', rootfs, '--', 'cat', '/proc/self/uid_map'], { uid: 65534, gid: 65534 });
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split(/\s+/).map(Number)).toEqual([0, 65534, 1]);
    expect(r.stderr).toMatch(/^tsbox: note: only your own uid maps into the container \(.*no range in \/etc\/subuid.*\); other ids appear as nobody, and -u with another user fails: for 65536 ids, add one: sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 \S+\n/);
    expect(r.stderr.trim().split('\n').every((l) => l.startsWith('tsbox: note: '))).toBe(true);
  });

  it('says how to add a range when such a user asks for another container user (issue 19, item 6)', async () => {
    const r = await cli(['run', '--rootfs', rootfs, '-u', 'nobody', '--', 'id'], { uid: 65534, gid: 65534 });
    expect(r.code).toBe(125);
    expect(r.stderr).toMatch(
      /(^|\n)tsbox: setgid\(65534\): EINVAL — switch to the container user; the id is not mapped in the container's user namespace: widen --uidmap\/--gidmap, or, as an ordinary user, add a subordinate range \(sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 \$USER\) so that 65536 ids map\n$/,
    );
  });
});
