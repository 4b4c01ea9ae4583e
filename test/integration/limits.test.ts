/**
 * Resource limits and usage (issue 6) on this host's cgroup layout, through
 * containers: memory, pids and cpu limits act, are visible inside, the report
 * tells what happened, and no cgroup outlives its container — not even when
 * tsbox itself is killed.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, inject, it } from 'vitest';

import { createCgroup, DEFAULT_PIDS_LIMIT, defaultStateDir, detectCgroupMode } from '../../ts/cgroups/index.js';
import { selfMoveSkipsGracePeriod } from '../../ts/cgroups/detect.js';
import { eventually } from '../cgroup2/support.js';
import { tsboxCgroups } from '../support/host.js';
import { cli, waitForOutput } from '../support/tsbox.js';

const rootfs = inject('rootfs');
const v2 = detectCgroupMode() === 'v2';

interface Report {
  exitCode: number;
  signal: string | null;
  oomKilled: boolean;
  timedOut: boolean;
  usage: { wallMs: number; userMicros: number; systemMicros: number; peakMemoryBytes: number | null; peakPids: number | null; cpuThrottledPeriods: number | null };
  limits: Record<string, unknown> | null;
}

async function report(args: string[], command: string[]) {
  const r = await cli(['run', '--rootfs', rootfs, '--report', '-', ...args, '--', ...command]);
  const json = r.stderr.slice(r.stderr.indexOf('{'));
  return { ...r, report: JSON.parse(json) as Report };
}

describe('limits act, and the report says so', () => {
  it('a memory limit OOM-kills an allocator: oomKilled true', async () => {
    const { report: r } = await report(['--memory', '48m'], ['tsbox-probe', 'alloc', '200']);
    expect(r.oomKilled).toBe(true);
    expect(r.signal).toBe('SIGKILL');
    expect(r.exitCode).toBe(137);
    expect(r.limits).toMatchObject({ memory: 48 * 1024 * 1024 });
  });

  it("reports peak memory within 10% of what the workload allocated", async () => {
    const { report: r, stdout } = await report([], ['tsbox-probe', 'alloc', '100']);
    expect(stdout.trim()).toBe('{"allocated":100}');
    const mib = 1024 * 1024;
    expect(r.usage.peakMemoryBytes!).toBeGreaterThanOrEqual(100 * mib);
    expect(r.usage.peakMemoryBytes!).toBeLessThanOrEqual(110 * mib);
    expect(r.oomKilled).toBe(false);
    expect(r.usage.wallMs).toBeGreaterThan(200);
  });

  it('a pids limit stops a fork loop', async () => {
    const { stdout, stderr, report: r } = await report(['--pids-limit', '10'], ['sh', '-c', 'for i in $(seq 30); do sleep 1 & done; wait']);
    expect(stdout + stderr).toMatch(/can't fork|Resource temporarily unavailable/);
    expect(r.limits).toMatchObject({ pidsLimit: 10 });
    if (r.usage.peakPids !== null) expect(r.usage.peakPids).toBeLessThanOrEqual(10);
  });

  it('a cpu quota shows up as throttling', async () => {
    const { report: r } = await report(['--cpus', '0.1'], ['sh', '-c', 'end=$(($(date +%s) + 2)); while [ $(date +%s) -lt $end ]; do :; done']);
    expect(r.usage.cpuThrottledPeriods!).toBeGreaterThan(0);
  });

  it('applies the default pids limit, and -1 removes it', async () => {
    const { report: d } = await report([], ['true']);
    expect(d.limits).toMatchObject({ pidsLimit: DEFAULT_PIDS_LIMIT });
    const { report: none } = await report(['--pids-limit', '-1'], ['true']);
    expect(none.limits).toMatchObject({ pidsLimit: -1 });
  });
});

describe('limits seen from inside', () => {
  it('--memory-swappiness and --oom-kill-disable: in the v1 memory cgroup; refused on v2, which has neither', async () => {
    const r = await cli(['run', '--rootfs', rootfs, '-m', '64m', '--memory-swappiness', '10', '--oom-kill-disable', '--', 'sh', '-c', 'cat /sys/fs/cgroup/memory/memory.swappiness; grep oom_kill_disable /sys/fs/cgroup/memory/memory.oom_control']);
    if (v2) {
      expect(r.code).toBe(125);
      expect(r.stderr).toContain('cgroup v2 has no memory.swappiness');
    } else {
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.trim().split('\n')).toEqual(['10', 'oom_kill_disable 1']);
    }
  });

  it('shows its own cgroup at / with the limits in /sys/fs/cgroup (read-only)', async () => {
    const files = v2 ? 'cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max /sys/fs/cgroup/cpu.max' : 'cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/cpu/cpu.cfs_quota_us';
    const r = await cli(['run', '--rootfs', rootfs, '-m', '64m', '--pids-limit', '33', '--cpus', '0.5', '--', 'sh', '-c', `${files}; grep -c ':/$' /proc/self/cgroup; echo 1 > /sys/fs/cgroup/x 2>/dev/null || echo ro`]);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toBe(String(64 * 1024 * 1024));
    expect(lines[1]).toBe('33');
    expect(lines[2]).toBe(v2 ? '50000 100000' : '50000');
    expect(lines.at(-1)).toBe('ro');
  });

  it('applies --ulimit, and no core dumps by default', async () => {
    const r = await cli(['run', '--rootfs', rootfs, '--ulimit', 'nofile=100:200', '--', 'sh', '-c', 'ulimit -n; ulimit -Hn; ulimit -c']);
    expect(r.stdout.trim().split('\n')).toEqual(['100', '200', '0']);
    const bad = await cli(['run', '--rootfs', rootfs, '--ulimit', 'nofile=300:200', '--', 'true']);
    expect(bad.stderr).toMatch(/^tsbox: config\(--ulimit nofile\): the soft limit must not be above the hard one/);
  });
});

describe('--preset contained', () => {
  it("reproduces the seed program's choices", async () => {
    const files = v2 ? 'cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max' : 'cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/cpu/cpu.shares';
    const r = await cli(['run', '--rootfs', rootfs, '--preset', 'contained', '--', 'sh', '-c', `${files}; ulimit -n; cat /proc/self/uid_map; grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status; tsbox-probe syscalls`]);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toBe(String(1024 ** 3));
    expect(lines[1]).toBe('64');
    if (!v2) expect(lines[2]).toBe('256');
    const rest = lines.slice(v2 ? 2 : 3);
    expect(rest[0]).toBe('64');
    expect(rest[1]!.trim().split(/\s+/).map(Number)).toEqual([0, 10000, 2000]);
    expect(rest[2]).toBe('NoNewPrivs:\t0');
    expect(rest[3]).toBe('Seccomp:\t2');
    const sys = JSON.parse(rest[4]!) as Record<string, number>;
    expect(sys.chmod_setuid).toBe(1);
    expect(sys.unshare_user).toBe(1);
    expect(sys.chmod_0755).toBe(0);
  });
});

describe('how the container gets into its cgroups', () => {
  const cgroupsOf = (pid: number | 'self') =>
    readFileSync(`/proc/${pid}/cgroup`, 'utf8')
      .trim()
      .split('\n')
      .map((l) => l.slice(l.indexOf(':') + 1));
  /** The host's processes with a cgroup of container `id` in any hierarchy, and their cgroups. */
  const inContainer = (id: string) =>
    readdirSync('/proc')
      .filter((p) => /^\d+$/.test(p))
      .map((p) => {
        try {
          return { pid: Number(p), cgroups: cgroupsOf(Number(p)) };
        } catch {
          return null;
        }
      })
      .filter((p) => p !== null && p.cgroups.some((c) => c.endsWith(`/tsbox/${id}`)));

  it('its processes, exec\'d ones too, are in every hierarchy of its cgroup, and its monitor stays where the caller is', async () => {
    const r = await cli(['run', '-d', '--rootfs', rootfs, '--', 'sleep', '30']);
    expect(r.code).toBe(0);
    const id = r.stdout.trim();
    try {
      const state = JSON.parse(readFileSync(join('/run/tsbox', id, 'state.json'), 'utf8')) as { pid: number; monitorPid: number };
      // The monitor (which cloned it) is neither counted, frozen nor killed with it.
      expect(cgroupsOf(state.monitorPid)).toEqual(cgroupsOf('self'));
      const exec = cli(['exec', id, 'sleep', '30'], { killAfterMs: 20_000 });
      // PID 1 (init), its sleep, and the exec'd sleep, each in every
      // hierarchy: an exec'd process is placed by pid, one hierarchy after
      // another, and may be caught between two.
      const inAll = (p: { cgroups: string[] }) => p.cgroups.length === cgroupsOf('self').length && p.cgroups.every((c) => c.endsWith(`/tsbox/${id}`));
      expect(
        await eventually(() => {
          const all = inContainer(id);
          return all.length >= 3 && all.every(inAll);
        }),
        JSON.stringify(inContainer(id)),
      ).toBe(true);
      const procs = inContainer(id);
      expect(procs.map((p) => p.pid)).toContain(state.pid);
      for (const p of procs) {
        expect(p.cgroups.length).toBe(cgroupsOf('self').length);
        for (const c of p.cgroups) expect(c).toMatch(new RegExp(`:.*/tsbox/${id}$`));
      }
      await cli(['kill', id]);
      await exec;
    } finally {
      await cli(['rm', '-f', id]);
    }
  });

  // Linux 6.5+: a thread's own move waits for no grace period (ts/cgroups/detect.ts).
  const entering = !v2 && selfMoveSkipsGracePeriod();
  it(v2 ? 'v2: clone3 puts it straight into its cgroup' : entering ? "v1 and hybrid, as root: the helper's own thread enters the cgroups, clones there and goes back, placing nothing by pid" : 'v1 and hybrid before Linux 6.5: the helper places it by pid', async () => {
    const r = await cli(['run', '--trace', '--rootfs', rootfs, '--', 'true']);
    expect(r.code).toBe(0);
    if (v2) expect(r.stderr).toMatch(/into its cgroup \(CLONE_INTO_CGROUP\)/);
    else if (entering) expect(r.stderr).toMatch(/cgroup: cloned in \/sys\/fs\/cgroup\/.* by the helper's own thread, back once the child had go/);
    else expect(r.stderr).toMatch(/cgroup: pid \d+ placed in/);
    if (v2 || entering) expect(r.stderr).not.toMatch(/cgroup: pid \d+ placed in/);
  });

  it('a pids limit of 1 still runs a command without init (the helper is not counted in it)', async () => {
    const r = await cli(['run', '--pids-limit', '1', '--no-init', '--trace', '--rootfs', rootfs, '--', 'cat', v2 ? '/sys/fs/cgroup/pids.max' : '/sys/fs/cgroup/pids/pids.max']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe('1');
    // On v1 it is placed by pid: the helper's thread would be counted while it clones.
    if (!v2) expect(r.stderr).toMatch(/cgroup: pid \d+ placed in/);
  });
});

describe('teardown', () => {
  it('leaves no cgroup after success, failure, OOM and timeout', async () => {
    const before = tsboxCgroups();
    await cli(['run', '--rootfs', rootfs, '--', 'true']);
    await cli(['run', '--rootfs', rootfs, '--', 'no-such-command']);
    await cli(['run', '--rootfs', rootfs, '-m', '32m', '--', 'tsbox-probe', 'alloc', '100']);
    await cli(['run', '--rootfs', rootfs, '--timeout', '300ms', '--', 'sleep', '10']);
    expect(tsboxCgroups().filter((c) => !before.includes(c))).toEqual([]);
  });

  it('collects the cgroup of a tsbox killed with SIGKILL on the next start (and with tsbox gc)', async () => {
    const before = tsboxCgroups();
    let leaked: string[] = [];
    const r = await cli(['run', '--rootfs', rootfs, '--', 'sh', '-c', 'echo ready; sleep 100'], {
      onSpawn: (child) => {
        void waitForOutput(child, 'ready').then(() => {
          leaked = tsboxCgroups().filter((c) => !before.includes(c));
          child.kill('SIGKILL');
        });
      },
    });
    expect(r.signal).toBe('SIGKILL');
    expect(leaked.length).toBeGreaterThan(0);
    const gc = await cli(['gc']);
    expect(gc.code).toBe(0);
    expect(leaked.filter((c) => existsSync(c))).toEqual([]);
    // Whichever collected them, this gc or the first start of a container in
    // another test file running meanwhile, says how many it removed.
    expect(gc.stderr).toMatch(/tsbox: removed \d+ orphaned cgroup/);
  });

  /**
   * An orphan as a tsbox killed between its marker and its end leaves one: a
   * marker whose owner is dead, and its cgroups in the default places. The
   * owner's start time in the marker is one no process has, so a reused pid
   * is not taken for the owner.
   */
  function orphanCgroup(): { dirs: string[]; destroy(): void } {
    const id = `orphan${randomBytes(8).toString('hex')}`;
    const orphan = createCgroup(id, {}, { owner: 2 ** 22 + 1 });
    const marker = join(defaultStateDir(), `${id}.json`);
    writeFileSync(marker, JSON.stringify({ ...(JSON.parse(readFileSync(marker, 'utf8')) as object), ownerStart: 'never' }));
    const dirs = Object.values(orphan.paths);
    expect(dirs.length).toBeGreaterThan(0);
    for (const d of dirs) expect(existsSync(d), d).toBe(true);
    return { dirs, destroy: () => orphan.destroy() };
  }

  // No `tsbox gc` in these: a start collects orphans (this one, or another
  // test file's starting meanwhile: the same collection).
  it("the next container's start collects the cgroups of a dead owner by itself", async () => {
    const orphan = orphanCgroup();
    try {
      const r = await cli(['run', '--rootfs', rootfs, '--', 'echo', 'started']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toBe('started\n');
      expect(orphan.dirs.filter((d) => existsSync(d))).toEqual([]);
    } finally {
      orphan.destroy();
    }
  });

  it('a start that fails before its container runs collects them too', async () => {
    const orphan = orphanCgroup();
    try {
      // Refused while the plan is made, after the helper is spawned.
      const r = await cli(['run', '--rootfs', rootfs, '--security-opt', 'seccomp=/nonexistent/profile.json', '--', 'true']);
      expect(r.code).toBe(125);
      expect(r.stderr).toMatch(/nonexistent\/profile\.json/);
      expect(orphan.dirs.filter((d) => existsSync(d))).toEqual([]);
    } finally {
      orphan.destroy();
    }
  });
});
