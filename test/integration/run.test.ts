/**
 * `tsbox run` end to end, as root: what the container process sees (through the
 * probe), what the caller gets back (exit codes, signals, stdio), and that
 * nothing survives tsbox.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdtempSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';

import { describe, expect, inject, it } from 'vitest';

import { locateNative } from '../../ts/native.js';
import { tsboxDirs } from '../cgroup2/support.js';
import { alive, cli, descendants, eventually, REPO, waitForOutput, type ProbeInfo } from '../support/tsbox.js';

const rootfs = inject('rootfs');

async function probe(...flags: string[]): Promise<ProbeInfo> {
  const r = await cli(['run', '--rootfs', rootfs, ...flags, '--', 'tsbox-probe', 'info']);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as ProbeInfo;
}

/** The state root's entries (a container's directory is named by its id). */
function launchState(): string[] {
  return readdirSync('/run/tsbox').sort();
}

describe('what the container sees', () => {
  it('runs the command as PID 2 under tsbox init by default', async () => {
    const info = await probe();
    expect(info.pid).toBe(2);
    expect(info.ppid).toBe(1);
  });

  it('makes the command PID 1 with --no-init', async () => {
    const info = await probe('--no-init');
    expect(info.pid).toBe(1);
    expect(info.ppid).toBe(0);
  });

  it('sets the given hostname, and a 12-hex-digit one by default', async () => {
    expect((await probe('--hostname', 'box-1')).hostname).toBe('box-1');
    const info = await probe();
    expect(info.hostname).toMatch(/^[0-9a-f]{12}$/);
    expect(info.env.HOSTNAME).toBe(info.hostname);
  });

  it('is in new user, pid, mount, net, ipc, uts and cgroup namespaces', async () => {
    const info = await probe();
    const host = (ns: string) => Number(/\[(\d+)\]/.exec(readlinkSync(`/proc/self/ns/${ns}`))![1]);
    for (const ns of ['user', 'pid', 'mnt', 'net', 'ipc', 'uts', 'cgroup'] as const) {
      expect(info.ns[ns], ns).toBeTypeOf('number');
      expect(info.ns[ns], ns).not.toBe(host(ns));
    }
    // In its own cgroup namespace the container is at the root of its cgroup.
    expect(info.cgroup.every((l) => l.endsWith(':/'))).toBe(true);
  });

  it('maps container root to an unprivileged host range', async () => {
    const info = await probe();
    expect(info.uid).toBe(0);
    // A 65536-id block from 0x70000000 (which block depends on what else runs).
    const [inside, host, size] = info.uidMap[0]!;
    expect(info.uidMap).toHaveLength(1);
    expect([inside, size]).toEqual([0, 65536]);
    expect(host).toBeGreaterThanOrEqual(0x7000_0000);
    expect((host - 0x7000_0000) % 65536).toBe(0);
    expect(info.gidMap).toEqual(info.uidMap);
  });

  it('sees its rootfs as / and no host path after pivot_root', async () => {
    const r = await cli(['run', '--rootfs', rootfs, '--', 'tsbox-probe', 'exists', REPO, `${REPO}package.json`, rootfs, '/bin/busybox', '/usr/bin/tsbox-probe']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      [REPO]: false,
      [`${REPO}package.json`]: false,
      [rootfs]: false,
      '/bin/busybox': true,
      '/usr/bin/tsbox-probe': true,
    });
    const info = await probe();
    const root = info.mounts.filter((m) => m.mountPoint === '/');
    expect(root).toHaveLength(1);
    // The old root is detached: no mount of the host's other filesystems remains.
    expect(info.mounts.map((m) => m.mountPoint).filter((p) => p.startsWith(REPO) || p === '/work')).toEqual([]);
  });

  it('mounts a /proc of its own pid namespace', async () => {
    const r = await cli(['run', '--rootfs', rootfs, '--', 'sh', '-c', 'ls -d /proc/[0-9]* | wc -l']);
    expect(r.code).toBe(0);
    // init, sh, ls (and wc): only the container's processes.
    expect(Number(r.stdout.trim())).toBeLessThanOrEqual(4);
  });

  it('has loopback up and no other interface', async () => {
    const info = await probe();
    expect(info.interfaces).toEqual(['lo']);
    expect(info.interfacesUp).toEqual(['lo']);
  });

  it('runs with no_new_privs and without the capabilities the seed drops', async () => {
    const info = await probe();
    expect(info.status.NoNewPrivs).toBe(1);
    const bnd = BigInt(`0x${info.status.CapBnd}`);
    const CAP_SYS_ADMIN = 21n;
    const CAP_MKNOD = 27n;
    expect(bnd & (1n << CAP_SYS_ADMIN)).toBe(0n);
    expect(bnd & (1n << CAP_MKNOD)).toBe(0n);
    expect(info.status.CapEff).toBe(info.status.CapBnd);
    expect(info.status.CapInh).toBe('0000000000000000');
  });

  it('passes the environment and working directory', async () => {
    const info = await probe('-e', 'GREETING=hi there', '-w', '/tmp');
    expect(info.env.GREETING).toBe('hi there');
    expect(info.env.PATH).toContain('/bin');
    expect(info.cwd).toBe('/tmp');
  });
});

describe('the default root: the host, read-only', () => {
  it("prints the command's pid, uid 0 and the hostname, as the README promises", async () => {
    const r = await cli(['run', '--', 'sh', '-c', 'echo $$; id -u; hostname']);
    expect(r.code).toBe(0);
    const [pid, uid, host] = r.stdout.trim().split('\n');
    expect(pid).toBe('2');
    expect(uid).toBe('0');
    expect(host).toMatch(/^[0-9a-f]{12}$/);
    const noInit = await cli(['run', '--no-init', '--', 'sh', '-c', 'echo $$']);
    expect(noInit.stdout.trim()).toBe('1');
  });

  it('cannot write to the host, but has a writable /tmp', async () => {
    const r = await cli(['run', '--', 'sh', '-c', `touch ${REPO}x 2>/dev/null && echo wrote-host; touch /tmp/x && echo wrote-tmp`]);
    expect(r.stdout.trim()).toBe('wrote-tmp');
  });
});

describe('exit codes and signals', () => {
  it("returns the command's exit code", async () => {
    expect((await cli(['run', '--rootfs', rootfs, '--', 'sh', '-c', 'exit 7'])).code).toBe(7);
    expect((await cli(['run', '--rootfs', rootfs, '--no-init', '--', 'sh', '-c', 'exit 9'])).code).toBe(9);
  });

  it('returns 128+N when signal N ends the command', async () => {
    expect((await cli(['run', '--rootfs', rootfs, '--', 'sh', '-c', 'kill -9 $$'])).code).toBe(137);
    expect((await cli(['run', '--rootfs', rootfs, '--', 'sh', '-c', 'kill -TERM $$'])).code).toBe(143);
  });

  it('passes stdin, stdout and stderr through', async () => {
    const r = await cli(['run', '--rootfs', rootfs, '--', 'sh', '-c', 'read line; echo "out:$line"; echo "err:$line" >&2'], { input: 'hello\n' });
    expect(r.stdout).toBe('out:hello\n');
    expect(r.stderr).toBe('err:hello\n');
  });

  it('reaps orphaned zombies with its init', async () => {
    // The probe forks children and exits without waiting; they are re-parented
    // to PID 1, which must reap them.
    const r = await cli(['run', '--rootfs', rootfs, '--', 'sh', '-c', 'tsbox-probe zombies 5 >/dev/null; sleep 0.5; cat /proc/[0-9]*/stat 2>/dev/null | cut -d" " -f3 | grep -c Z']);
    expect(r.stdout.trim()).toBe('0');
  });

  for (const [sig, code] of [['SIGTERM', 100 + 15], ['SIGINT', 100 + 2], ['SIGHUP', 100 + 1]] as const) {
    it(`forwards ${sig} sent to tsbox to the command`, async () => {
      const r = await cli(['run', '--rootfs', rootfs, '--', 'tsbox-probe', 'signals', '20'], {
        onSpawn: (child) => {
          void waitForOutput(child, 'ready').then(() => {
            child.kill(sig);
            // The probe exits on SIGTERM only; follow up so the run ends.
            if (sig !== 'SIGTERM') void waitForOutput(child, sig).then(() => child.kill('SIGTERM'));
          });
        },
      });
      expect(r.stdout.split('\n')).toContain(sig);
      expect(r.code).toBe(sig === 'SIGTERM' ? code : 115);
    });
  }

  it('stops `sleep` on Ctrl-C (SIGINT) under init', async () => {
    // 130: SIGINT ended it (sleep 100 would outlive the helper's 20 s kill, which gives no status).
    const r = await cli(['run', '--rootfs', rootfs, '--', 'sleep', '100'], {
      onSpawn: (child) => setTimeout(() => child.kill('SIGINT'), 1_000),
    });
    expect(r.code).toBe(130);
  });

  it('leaves no process behind when tsbox is killed with SIGKILL', async () => {
    let tree: number[] = [];
    const r = await cli(['run', '--rootfs', rootfs, '--', 'sh', '-c', 'sleep 100 & sleep 100 & echo ready; wait'], {
      onSpawn: (child) => {
        void waitForOutput(child, 'ready').then(() => {
          tree = descendants(child.pid!);
          child.kill('SIGKILL');
        });
      },
    });
    expect(r.signal).toBe('SIGKILL');
    // tsbox-init, init, sh and two sleeps.
    expect(tree.length).toBeGreaterThanOrEqual(5);
    expect(await eventually(() => tree.every((p) => !alive(p)))).toBe(true);
  });
});

describe('errors name the step, the errno and the path, with the exit code', () => {
  it('a missing rootfs: 125', async () => {
    const r = await cli(['run', '--rootfs', '/nonexistent/tsbox-rootfs', '--', 'true']);
    expect(r.code).toBe(125);
    expect(r.stderr).toBe(
      'tsbox: open_rootfs(/nonexistent/tsbox-rootfs): ENOENT — the rootfs directory does not exist; pass an existing directory holding a root filesystem with --rootfs\n',
    );
  });

  it('a rootfs that is a file: 125', async () => {
    const r = await cli(['run', '--rootfs', `${rootfs}/etc/passwd`, '--', 'true']);
    expect(r.code).toBe(125);
    expect(r.stderr).toMatch(/^tsbox: open_rootfs\(.*\/etc\/passwd\): ENOTDIR — the rootfs is not a directory; /);
  });

  it('a missing command: 127', async () => {
    const r = await cli(['run', '--rootfs', rootfs, '--', 'no-such-command']);
    expect(r.code).toBe(127);
    expect(r.stderr).toMatch(/^tsbox: exec\(no-such-command\): ENOENT — .*not found/);
    const noInit = await cli(['run', '--rootfs', rootfs, '--no-init', '--', '/bin/no-such-command']);
    expect(noInit.code).toBe(127);
  });

  it('a command that is not executable: 126', async () => {
    const r = await cli(['run', '--rootfs', rootfs, '--', '/etc/passwd']);
    expect(r.code).toBe(126);
    expect(r.stderr).toMatch(/^tsbox: exec\(\/etc\/passwd\): EACCES — .*not executable/);
  });

  it('a tsbox-init that cannot be started: 125, naming it, and nothing is left of the launch', async () => {
    // The spawn runs on the addon's thread while the launch goes on to its
    // id range, cgroup and state: its failure, found before the plan goes
    // out, must still undo all of them and say what failed.
    const dir = mkdtempSync(join(tmpdir(), 'tsbox-test-badinit-'));
    const { addonPath } = locateNative();
    copyFileSync(addonPath, join(dir, basename(addonPath)));
    writeFileSync(join(dir, 'tsbox-init'), 'not a program\n', { mode: 0o755 });
    const before = { state: new Set(launchState()), cgroups: new Set(tsboxDirs()) };
    try {
      const r = await cli(['run', '--rootfs', rootfs, '--', 'true'], { env: { ...process.env, TSBOX_NATIVE_DIR: dir } });
      expect(r.code).toBe(125);
      const init = join(dir, 'tsbox-init');
      expect(r.stderr).toBe(`tsbox: spawn_helper(${init}): start ${init}: Exec format error (ENOEXEC); reinstall tsbox, or point TSBOX_NATIVE_DIR at a build holding tsbox-init\n`);
      // Nothing new (a collection of crashed runs may remove what was there).
      expect(launchState().filter((e) => !before.state.has(e))).toEqual([]);
      expect(tsboxDirs().filter((c) => !before.cgroups.has(c))).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a script whose #! interpreter is missing says so, not "not found"; a file with no #! line is no program (issue 19, item 4)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tsbox-test-shebang-'));
    chmodSync(dir, 0o755);
    writeFileSync(join(dir, 'script.sh'), '#!/bin/nosuchshell\necho hi\n', { mode: 0o755 });
    writeFileSync(join(dir, 'notes'), 'echo hi\n', { mode: 0o755 });
    try {
      const r = await cli(['run', '--rootfs', rootfs, '-v', `${dir}:/data:ro`, '--', '/data/script.sh']);
      expect(r.code).toBe(127);
      expect(r.stderr).toBe(
        "tsbox: exec(/data/script.sh): ENOENT — execute /data/script.sh: the file exists, but its interpreter /bin/nosuchshell (from its #! line) is missing in the container; install that interpreter in the root filesystem, or change the #! line to one the container has (e.g. #!/bin/sh)\n",
      );
      // Found through PATH, the same.
      const inPath = await cli(['run', '--rootfs', rootfs, '-v', `${dir}:/data:ro`, '-e', 'PATH=/data:/bin', '--', 'script.sh']);
      expect(inPath.stderr).toMatch(/^tsbox: exec\(script.sh\): ENOENT — execute script.sh: the file exists, but its interpreter \/bin\/nosuchshell/);
      const text = await cli(['run', '--rootfs', rootfs, '-v', `${dir}:/data:ro`, '--no-init', '--', '/data/notes']);
      expect(text.code).toBe(126);
      expect(text.stderr).toBe('tsbox: exec(/data/notes): ENOEXEC — execute /data/notes: the file is not a binary for this machine and has no #! line; a script needs a first line naming its interpreter, e.g. #!/bin/sh\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a Docker flag tsbox refuses: 125, saying why and what to do instead (issue 19)", async () => {
    const r = await cli(['run', '--privileged', '--rootfs', rootfs, '--', 'true']);
    expect(r.code).toBe(125);
    expect(r.stderr).toBe('tsbox: config(--privileged): not supported; tsbox has no privileged mode: each of its defaults is a boundary. Ask for what you need: --cap-add ALL, --security-opt seccomp=unconfined, --unmask ALL\n');
  });

  it('an unknown option: 125, naming it', async () => {
    const r = await cli(['run', '--bogus', '--', 'true']);
    expect(r.code).toBe(125);
    expect(r.stderr).toMatch(/^tsbox: config\(--bogus\): unknown option; /);
  });

  it('a volume whose mount point a read-only root lacks: one line that says it once, and what to do (issue 19)', async () => {
    const r = await cli(['run', '--rootfs', rootfs, '--read-only', '-v', '/tmp:/nonexist', '--', 'true']);
    expect(r.code).toBe(125);
    expect(r.stderr).toBe('tsbox: mount(/nonexist): EROFS — create the missing mount point; a read-only root gets no new directories: create it in the root filesystem first, or run without --read-only\n');
  });

  it('a working directory that cannot be created (read-only root): 125, naming it', async () => {
    const r = await cli(['run', '--rootfs', rootfs, '--read-only', '-w', '/nope', '--', 'true']);
    expect(r.code).toBe(125);
    expect(r.stderr).toMatch(/^tsbox: chdir\(\/nope\): ENOENT/);
  });
});

describe('--trace', () => {
  it("prints the seed program's steps with time offsets", async () => {
    const r = await cli(['run', '--rootfs', rootfs, '--trace', '--', 'true']);
    expect(r.code).toBe(0);
    const lines = r.stderr.trim().split('\n');
    expect(lines.every((l) => /^tsbox\[\d+\] \+\d+\.\d{3}ms /.test(l))).toBe(true);
    for (const step of ['clone: CLONE_NEWUSER', 'uid_map: 0 18', 'gid_map:', 'mount: proc on /proc', 'pivot_root:', 'hostname:', 'exec: true']) {
      expect(lines.some((l) => l.includes(step)), step).toBe(true);
    }
    // The CLI's first line: how long tsbox took before the launch (its modules, the options).
    const start = /^tsbox\[\d+\] \+\d+\.\d{3}ms start: the launch begins (\d+\.\d{3}) ms after tsbox's entry$/.exec(lines[0]!);
    expect(start, lines[0]).not.toBeNull();
    expect(Number(start![1])).toBeGreaterThan(0);
  });

  it('prints nothing when off', async () => {
    expect((await cli(['run', '--rootfs', rootfs, '--', 'true'])).stderr).toBe('');
  });
});

describe('as an unprivileged caller', () => {
  it('maps the caller to root with a single mapping', async () => {
    const r = await cli(['run', '--rootfs', rootfs, '--', 'tsbox-probe', 'info'], { uid: 65534, gid: 65534 });
    expect(r.stderr).toMatch(/^tsbox: note: only your own uid maps into the container/);
    expect(r.code).toBe(0);
    const info = JSON.parse(r.stdout) as ProbeInfo;
    expect(info.uid).toBe(0);
    expect(info.uidMap).toEqual([[0, 65534, 1]]);
    expect(info.gidMap).toEqual([[0, 65534, 1]]);
    expect(info.setgroups).toBe('deny');
    expect(info.pid).toBe(2);
  });
});

describe("--add-host, --dns, --dns-search and --shm-size, as Docker's (issue 19)", () => {
  it('the container sees them in /etc/hosts, /etc/resolv.conf and the size of /dev/shm', async () => {
    const r = await cli([
      'run', '--add-host', 'db:10.0.0.2', '--dns', '9.9.9.9', '--dns-search', 'corp.example', '--shm-size', '128m', '--rootfs', rootfs, '--',
      'sh', '-c', 'grep -w db /etc/hosts; cat /etc/resolv.conf | grep -v options; df -k /dev/shm | tail -1 | awk \'{print $2}\'',
    ]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('10.0.0.2\tdb\nsearch corp.example\nnameserver 9.9.9.9\n131072\n');
    const bad = await cli(['run', '--add-host', 'db', '--rootfs', rootfs, '--', 'true']);
    expect(bad.stderr).toBe('tsbox: config(--add-host db): must be NAME:IP, such as db:10.0.0.2 or db:fd00::2\n');
  });
});

describe('--timeout', () => {
  it('kills the container after it, exits 137 as Docker does for SIGKILL, and says it was the timeout', async () => {
    const r = await cli(['run', '--timeout', '300ms', '--rootfs', rootfs, '--', 'sleep', '30']);
    expect(r.code).toBe(137);
    expect(r.stderr).toBe('tsbox: the container was killed (SIGKILL, exit 137) after its 300ms timeout\n');
    // From a --config file, in its milliseconds.
    const dir = mkdtempSync(join(tmpdir(), 'tsbox-test-timeout-'));
    try {
      writeFileSync(join(dir, 'c.json'), JSON.stringify({ timeout: 300 }));
      const c = await cli(['run', '--config', join(dir, 'c.json'), '--rootfs', rootfs, '--', 'sleep', '30']);
      expect(c.stderr).toBe('tsbox: the container was killed (SIGKILL, exit 137) after its 300ms timeout\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('--env-file (issue 19, item 5)', () => {
  it("is tsbox's, not Node's: the container gets the file's variables, -e over them", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tsbox-test-envfile-'));
    try {
      writeFileSync(join(dir, '.env'), '# settings\nGREETING=hello world\nLEVEL=1\n');
      const r = await cli(['run', '--env-file', join(dir, '.env'), '-e', 'LEVEL=2', '--rootfs', rootfs, '--', 'sh', '-c', 'echo "$GREETING/$LEVEL"']);
      expect(r).toMatchObject({ code: 0, stdout: 'hello world/2\n', stderr: '' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('-i with -t on a stdin that is not a terminal (issue 19, item 1)', () => {
  it('is refused at once, as Docker refuses it, instead of waiting for an end of input that never comes', async () => {
    const name = `t${process.pid}-notty`;
    expect((await cli(['run', '-d', '--name', name, '--rootfs', rootfs, '--', 'sleep', '30'])).code).toBe(0);
    try {
      for (const cmd of [['run', '-it', '--rootfs', rootfs, '--', 'cat'], ['exec', '-it', name, 'cat']]) {
        const r = await cli(cmd, { input: 'x\n', killAfterMs: 10_000 });
        expect(r.signal, `${cmd[0]} hung`).toBeNull();
        expect(r.code).toBe(125);
        expect(r.stderr).toBe('tsbox: config(-it): ENOTTY — the input device is not a TTY: -i with -t needs a terminal on stdin; leave out -t to pipe into the command (-i alone), or run from a terminal\n');
      }
    } finally {
      const rm = await cli(['rm', '-f', name]);
      expect(rm.code, rm.stderr).toBe(0);
    }
    // -i alone pipes stdin, and its end is the command's.
    const r = await cli(['run', '-i', '--rootfs', rootfs, '--', 'cat'], { input: 'x\n' });
    expect(r).toMatchObject({ code: 0, stdout: 'x\n' });
  });
});

describe('the CLI itself', () => {
  it('prints its version and help with examples', async () => {
    const v = await cli(['--version']);
    expect(v.stdout).toMatch(/^tsbox \d+\.\d+\.\d+/);
    const h = await cli(['run', '--help']);
    expect(h.code).toBe(0);
    expect(h.stdout).toContain('--rootfs');
    expect(h.stdout).toContain('--no-init');
    expect(h.stdout).toContain('Examples:');
    const top = await cli(['--help']);
    expect(top.stdout).toMatch(/^Usage: tsbox COMMAND/);
    for (const c of ['run', 'ps', 'exec', 'logs', 'stop', 'kill', 'rm', 'inspect', 'gc', 'seccomp', 'completion']) expect(top.stdout).toMatch(new RegExp(`\\n  ${c} +\\S`));
    expect(top.stdout.split('\n').filter((l) => [...l].length > 80)).toEqual([]);
    // `tsbox help run` is `tsbox run --help`, examples included.
    expect((await cli(['help', 'run'])).stdout).toBe(h.stdout);
    expect((await cli(['help', 'nope'])).stderr).toMatch(/^tsbox: config\(nope\): unknown command/);
  });

  it('prints a bash completion script that completes its commands and flags', async () => {
    const r = await cli(['completion', 'bash']);
    expect(r.code).toBe(0);
    const out = spawnSync('bash', ['-c', `${r.stdout}\nCOMP_WORDS=(tsbox run --env-f); COMP_CWORD=2; _tsbox; echo "\${COMPREPLY[@]}"`], { encoding: 'utf8' });
    expect(out.stdout).toBe('--env-file\n');
  });

  it('takes -h NAME for the hostname, as Docker does', async () => {
    const r = await cli(['run', '-h', 'box1', '--rootfs', rootfs, '--', 'hostname']);
    expect(r).toMatchObject({ code: 0, stdout: 'box1\n' });
  });

  it('writes help without colour to a pipe; every command takes --help and -h', async () => {
    const { NO_COLOR: _n, ...env } = process.env;
    for (const command of ['run', 'ps', 'exec', 'logs', 'stop', 'kill', 'rm', 'inspect', 'gc', 'seccomp', 'completion']) {
      // run's -h is the hostname, as Docker's.
      for (const flag of command === 'run' ? ['--help'] : ['--help', '-h']) {
        const h = await cli([command, flag], { env });
        expect(h.code, `${command} ${flag}`).toBe(0);
        expect(h.stdout, `${command} ${flag}`).toContain(`tsbox ${command}`);
        expect(h.stdout, `${command} ${flag}`).not.toContain('\u001b[');
        // It fits 80 columns off a terminal (issue 19).
        expect(h.stdout.split('\n').filter((l) => [...l].length > 80), `${command} ${flag}`).toEqual([]);
      }
    }
  });
});
