/**
 * tsbox as podman's OCI runtime (issue 15): `podman --runtime tsbox`, with
 * conmon driving create, start, state, kill and delete, and exec, as it
 * drives runc. Debian's podman and conmon (installed by .ci/run), storage
 * and run directories of the test's own, the test rootfs as `--rootfs` and
 * imported as an image (`podman import`): no registry.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

import { throwawayUser } from '../support/host.js';
import { BIN, cli, eventually, runCommand, type CliResult } from '../support/tsbox.js';

const rootfs = inject('rootfs');
let dir = '';
/**
 * podman's cgroupfs manager puts conmon in /libpod_parent/conmon of each v1
 * hierarchy and never removes it: the suite removes what it made.
 */
const LIBPOD_PARENTS = () => readdirSync('/sys/fs/cgroup').map((h) => join('/sys/fs/cgroup', h, 'libpod_parent'));
let libpodBefore = new Set<string>();

/** rmdir's every empty cgroup under `dir` (children first), then `dir`. */
function removeEmptyCgroups(at: string): void {
  let entries;
  try {
    entries = readdirSync(at, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) if (e.isDirectory()) removeEmptyCgroups(join(at, e.name));
  try {
    rmdirSync(at);
  } catch {
    // Not empty (a process is in it): left as it is.
  }
}

beforeAll(() => {
  for (const tool of ['podman', 'conmon']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`]);
    } catch {
      throw new Error(`${tool} is not installed: .ci/run installs podman and conmon (apt-get install podman conmon)`);
    }
  }
  libpodBefore = new Set(LIBPOD_PARENTS().filter((p) => existsSync(p)));
  dir = mkdtempSync(join(tmpdir(), 'tsbox-podman-'));
  execFileSync('tar', ['-C', rootfs, '-cf', join(dir, 'rootfs.tar'), '.']);
});

afterAll(async () => {
  if (!dir) return;
  await podman(['rm', '--all', '--force', '--time', '0']);
  rmSync(dir, { recursive: true, force: true });
  for (const p of LIBPOD_PARENTS()) if (!libpodBefore.has(p)) removeEmptyCgroups(p);
});

/**
 * podman with tsbox as its runtime, its storage in the test's directory, the
 * cgroupfs manager (no systemd here), and no network. This machine's root
 * lacks CAP_SYS_RESOURCE, so podman's default nofile and nproc limits (which
 * raise the hard limits) are lowered for every container.
 */
/**
 * podman in the suite's directory: conmon writes a file named `oom` in its
 * working directory when its container is OOM-killed, which from the
 * checkout's would land in it (it once was committed).
 */
function podman(args: string[], input?: string, timeoutMs = 60_000): Promise<CliResult> {
  return runCommand('podman', [...globalFlags(), ...args], { ...(input !== undefined ? { input } : {}), killAfterMs: timeoutMs, cwd: dir });
}

/**
 * podman's flags for the test's storage, the cgroupfs manager, no events,
 * tsbox as the runtime. --tmpdir too: podman's default (/run/libpod, its
 * containers' exit files) is the host's, and would outlive the suite.
 */
const globalFlags = () => ['--root', join(dir, 'storage'), '--runroot', join(dir, 'run'), '--tmpdir', join(dir, 'tmp'), '--cgroup-manager', 'cgroupfs', '--events-backend', 'none', '--runtime', BIN];

const RUN = ['--network', 'none', '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=4096:4096'];
const IMAGE = 'localhost/tsbox-test-rootfs:latest';

/** podman under script(1), which gives it a terminal as a user's shell would (run -it). */
function podmanTty(args: string[]): Promise<CliResult> {
  const line = ['podman', ...globalFlags(), ...args].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(' ');
  return runCommand('script', ['-qec', line, '/dev/null'], { keepStdinOpen: true, killAfterMs: 60_000, cwd: dir });
}

describe('podman --runtime tsbox', () => {
  it('runs a container in the foreground: its output, its exit status, its hostname and its own pid namespace', async () => {
    const r = await podman(['run', '--rm', ...RUN, '--hostname', 'podded', '--rootfs', rootfs, 'sh', '-c', 'echo "hello from $(hostname)"; echo "pid $$"; exit 7']);
    expect(r.code, r.stderr).toBe(7);
    expect(r.stdout).toBe('hello from podded\npid 1\n');
  });

  it('a detached container: ps, logs, exec (output, exit status, stdin, tty), stop with its signal, rm; nothing of it is left', async () => {
    const name = `tsbox-podman-${process.pid}`;
    const started = await podman(['run', '-d', ...RUN, '--name', name, '--rootfs', rootfs, 'sh', '-c', 'echo started; trap "echo bye; exit 0" TERM; while :; do sleep 0.1; done']);
    expect(started.code, started.stderr).toBe(0);
    const id = started.stdout.trim();
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    expect((await podman(['ps', '--format', '{{.Names}}'])).stdout.split('\n')).toContain(name);
    expect((await podman(['inspect', '--format', '{{.State.Status}}', name])).stdout.trim()).toBe('running');
    // tsbox lists it too, under podman's id, with its bundle.
    const listed = await cli(['list', '--format', 'json']);
    expect((JSON.parse(listed.stdout) as { id: string; status: string }[]).find((c) => c.id === id)).toMatchObject({ status: 'running' });
    // exec: its output, its exit status (conmon's exec session waits for the
    // process: it descends from tsbox exec), its stdin, and a terminal.
    const exec = await podman(['exec', name, 'sh', '-c', 'echo "in $(hostname)"; exit 5']);
    expect(exec).toMatchObject({ code: 5, stdout: `in ${id.slice(0, 12)}\n` });
    expect(await podman(['exec', '-i', name, 'cat'], 'piped\n')).toMatchObject({ code: 0, stdout: 'piped\n' });
    const tty = await podman(['exec', '-t', name, 'sh', '-c', 'tty; exit 3']);
    expect(tty.code, tty.stderr).toBe(3);
    expect(tty.stdout).toMatch(/^\/dev\/pts\/\d+\r?\n$/);
    const stop = await podman(['stop', '--time', '10', name]);
    expect(stop.code, stop.stderr).toBe(0);
    const inspect = await podman(['inspect', '--format', '{{.State.Status}} {{.State.ExitCode}}', name]);
    expect(inspect.stdout.trim()).toBe('exited 0');
    expect((await podman(['logs', name])).stdout).toBe('started\nbye\n');
    expect((await podman(['rm', name])).code).toBe(0);
    expect((await cli(['state', id])).code).not.toBe(0);
    expect(readdirSync(join(dir, 'run', 'overlay-containers')).filter((d) => d.startsWith(id))).toEqual([]);
  });

  it('kill sends its signal to PID 1; a memory limit is the container\'s cgroup\'s and OOM-kills past it', async () => {
    const name = `tsbox-podman-kill-${process.pid}`;
    expect((await podman(['run', '-d', ...RUN, '--name', name, '--rootfs', rootfs, 'sleep', '100'])).code).toBe(0);
    expect((await podman(['kill', '--signal', 'KILL', name])).code).toBe(0);
    expect((await podman(['wait', name])).stdout.trim()).toBe('137');
    expect((await podman(['rm', name])).code).toBe(0);
    const oom = await podman(['run', '--rm', ...RUN, '--memory', '64m', '--memory-swap', '64m', '--rootfs', rootfs, 'tsbox-probe', 'alloc', '200']);
    expect(oom.code).toBe(137);
    expect(existsSync(join(dir, 'storage'))).toBe(true);
  });

  it('networks podman made: --network host (the host\'s namespace) and ns:PATH (one this test makes), each joined as the config says', async () => {
    const ns = `tsbox-podman-${process.pid}`;
    execFileSync('ip', ['netns', 'add', ns]);
    try {
      execFileSync('ip', ['-n', ns, 'link', 'add', 'tsboxv0', 'type', 'veth', 'peer', 'name', 'tsboxv1']);
      execFileSync('ip', ['-n', ns, 'addr', 'add', '10.231.0.1/24', 'dev', 'tsboxv0']);
      const joined = await podman(['run', '--rm', ...RUN.filter((a) => a !== '--network' && a !== 'none'), '--network', `ns:/run/netns/${ns}`, '--rootfs', rootfs, 'sh', '-c', 'readlink /proc/self/ns/net; ip -o -4 addr show tsboxv0']);
      expect(joined.code, joined.stderr).toBe(0);
      const [netns, addr] = joined.stdout.trim().split('\n');
      expect(netns).toBe(execFileSync('ip', ['netns', 'exec', ns, 'readlink', '/proc/self/ns/net']).toString().trim());
      expect(addr).toContain('inet 10.231.0.1/24');
    } finally {
      execFileSync('ip', ['netns', 'del', ns]);
    }
    const host = await podman(['run', '--rm', ...RUN.filter((a) => a !== '--network' && a !== 'none'), '--network', 'host', '--rootfs', rootfs, 'readlink', '/proc/self/ns/net']);
    expect(host.code, host.stderr).toBe(0);
    expect(host.stdout.trim()).toBe(readlinkSync('/proc/self/ns/net'));
  });

  it('an imported image: run IMAGE, run -it through conmon\'s console socket, --pids-limit seen inside, pause and unpause', async () => {
    const imported = await podman(['import', join(dir, 'rootfs.tar'), IMAGE]);
    expect(imported.code, imported.stderr).toBe(0);
    expect(await podman(['run', '--rm', ...RUN, IMAGE, 'echo', 'from the image'])).toMatchObject({ code: 0, stdout: 'from the image\n' });
    const tty = await podmanTty(['run', '--rm', '-it', ...RUN, IMAGE, 'sh', '-c', 'tty; exit 4']);
    expect(tty.code).toBe(4);
    expect(tty.stdout).toMatch(/\/dev\/pts\/\d+/);
    // With a cgroup namespace of its own, the container's cgroupfs is its own cgroup.
    const pids = await podman(['run', '--rm', ...RUN, '--cgroupns', 'private', '--pids-limit', '20', IMAGE, 'cat', '/sys/fs/cgroup/pids/pids.max']);
    expect(pids).toMatchObject({ code: 0, stdout: '20\n' });

    const name = `tsbox-podman-pause-${process.pid}`;
    expect((await podman(['run', '-d', ...RUN, '--name', name, IMAGE, 'sh', '-c', 'i=0; while :; do i=$((i+1)); echo $i > /tmp/count; sleep 0.05; done'])).code).toBe(0);
    const pid = Number((await podman(['inspect', '--format', '{{.State.Pid}}', name])).stdout.trim());
    const count = () => Number(readFileSync(`/proc/${pid}/root/tmp/count`, 'utf8'));
    await new Promise((r) => setTimeout(r, 300));
    expect((await podman(['pause', name])).code).toBe(0);
    expect((await podman(['inspect', '--format', '{{.State.Status}}', name])).stdout.trim()).toBe('paused');
    const frozen = count();
    await new Promise((r) => setTimeout(r, 300));
    expect(count()).toBe(frozen);
    expect((await podman(['unpause', name])).code).toBe(0);
    expect((await podman(['inspect', '--format', '{{.State.Status}}', name])).stdout.trim()).toBe('running');
    expect(await eventually(() => count() > frozen)).toBe(true);
    expect((await podman(['rm', '--force', '--time', '0', name])).code).toBe(0);
  });
});

/**
 * Rootless podman: an ordinary user's podman, in the user namespace it makes
 * from the user's /etc/subuid range, runs tsbox as root of that namespace.
 * tsbox takes that root for the user it is (its $XDG_RUNTIME_DIR, no cgroup
 * or device cgroup to make, the host's cgroupfs bound read-only, as runc).
 * The user, its subordinate ranges and podman's pause process are the
 * suite's own, and go with it.
 */
describe('rootless podman --runtime tsbox', () => {
  const user = throwawayUser(`tsbox-pod-${process.pid}`);
  let home = '';
  /** The subordinate range podman maps after the user: useradd's, or one the suite adds (and takes back). */
  let range = { start: 0, count: 0 };
  const saved = new Map<string, string>();

  beforeAll(() => {
    for (const file of ['/etc/subuid', '/etc/subgid']) {
      const before = existsSync(file) ? readFileSync(file, 'utf8') : '';
      const own = before.split('\n').find((l) => l.startsWith(`${user.name}:`));
      if (own) {
        const [, start, count] = own.split(':');
        range = { start: Number(start), count: Number(count) };
        continue;
      }
      // Where useradd gives none: ids no other user here has (tsbox allocates from 0x70000000 up).
      saved.set(file, before);
      range = { start: 1073741824, count: 65536 };
      writeFileSync(file, `${before}${before === '' || before.endsWith('\n') ? '' : '\n'}${user.name}:${range.start}:${range.count}\n`);
    }
    home = mkdtempSync(join(tmpdir(), 'tsbox-podman-rootless-'));
    execFileSync('cp', ['-a', rootfs, join(home, 'rootfs')]);
    execFileSync('chown', ['-R', `${user.uid()}:${user.uid()}`, home]);
  });

  afterAll(async () => {
    if (home) {
      await rootless(['rm', '--all', '--force', '--time', '0']);
      // podman's pause process holds its user namespace: ours to end, by its pid.
      const pause = join(home, 'run/libpod/tmp/pause.pid');
      if (existsSync(pause)) {
        try {
          process.kill(Number(readFileSync(pause, 'utf8').trim()), 'SIGKILL');
        } catch {
          // Gone already.
        }
      }
      rmSync(home, { recursive: true, force: true });
    }
    for (const [file, before] of saved) writeFileSync(file, before);
  });

  /** podman as the user, its storage (vfs: no fuse-overlayfs here) and runtime directory in `home`. */
  function rootless(args: string[], input?: string): Promise<CliResult> {
    const global = ['--root', join(home, 'storage'), '--runroot', join(home, 'runroot'), '--storage-driver', 'vfs', '--cgroup-manager', 'cgroupfs', '--events-backend', 'none', '--runtime', BIN];
    return runCommand('podman', [...global, ...args], {
      cwd: home,
      uid: user.uid(),
      env: { PATH: process.env.PATH, HOME: home, USER: user.name, XDG_RUNTIME_DIR: join(home, 'run') },
      ...(input !== undefined ? { input } : {}),
      killAfterMs: 60_000,
    });
  }

  it('run --rm: root inside, the user outside (its uid mapped to 0, its subordinate range after), the exit status, nothing of tsbox\'s left in /run/tsbox', async () => {
    mkdirSync(join(home, 'run'), { recursive: true, mode: 0o700 });
    execFileSync('chown', [`${user.uid()}:${user.uid()}`, join(home, 'run')]);
    const before = existsSync('/run/tsbox') ? readdirSync('/run/tsbox').sort() : [];
    const r = await rootless(['run', '--rm', '--network', 'none', '--rootfs', join(home, 'rootfs'), 'sh', '-c', 'id -u; cat /proc/self/uid_map; echo "pid $$"; exit 6']);
    expect(r.code, r.stderr).toBe(6);
    const [uid, ...rest] = r.stdout.trim().split('\n');
    expect(uid).toBe('0');
    expect(rest.join('\n')).toMatch(new RegExp(`^\\s*0\\s+${user.uid()}\\s+1\\n\\s*1\\s+${range.start}\\s+${range.count}\\npid 1$`));
    // Its state went to the user's runtime directory, not root's.
    expect(existsSync('/run/tsbox') ? readdirSync('/run/tsbox').sort() : []).toEqual(before);
  });

  it('run -d, exec (output, exit status), stop with its signal, logs and rm', async () => {
    const name = `tsbox-rl-${process.pid}`;
    const started = await rootless(['run', '-d', '--network', 'none', '--name', name, '--rootfs', join(home, 'rootfs'), 'sh', '-c', 'echo started; trap "echo bye; exit 0" TERM; while :; do sleep 0.1; done']);
    expect(started.code, started.stderr).toBe(0);
    expect(await rootless(['exec', name, 'sh', '-c', 'echo in; exit 5'])).toMatchObject({ code: 5, stdout: 'in\n' });
    expect((await rootless(['stop', '--time', '10', name])).code).toBe(0);
    expect((await rootless(['inspect', '--format', '{{.State.Status}} {{.State.ExitCode}}', name])).stdout.trim()).toBe('exited 0');
    expect((await rootless(['logs', name])).stdout).toBe('started\nbye\n');
    expect((await rootless(['rm', name])).code).toBe(0);
    expect((await rootless(['ps', '-a', '--format', '{{.Names}}'])).stdout.split('\n')).not.toContain(name);
  });
});
