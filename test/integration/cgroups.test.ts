// ts/cgroups on this host's real cgroupfs, as root, with plain processes and no
// containers (the launch wires cgroups into containers): the limits land in the
// v1 files of a hybrid host, a placed process is limited and counted, and
// teardown and gc leave no cgroup behind in any hierarchy.
// The pure v2 twin of this file is test/cgroup2/cgroups.test.ts (in the VM).
import type { ChildProcess } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { createCgroup, DEFAULT_PIDS_LIMIT, defaultStateDir, detectCgroupMode, gc, type Cgroup, type CgroupLimitsInput } from '../../ts/cgroups/index.js';
import { TsboxError } from '../../ts/errors.js';
import { eventually, killQuietly, MiB, newId, procCgroup, spawnGated, tsboxDirs } from '../cgroup2/support.js';
import { workloadCases } from '../cgroup2/workloads.js';

/** cpulist_parse: a CPU beyond the kernel's range. */
const ERANGE = 34;

let before: string[];
const cgroups: Cgroup[] = [];
const children: ChildProcess[] = [];

/**
 * The default state directory, as every tsbox launch uses: other test files
 * start containers meanwhile, and their gc() must see these cgroups as live.
 */
const stateDir = defaultStateDir();

function make(limits: CgroupLimitsInput = {}, id = newId()): Cgroup {
  const cg = createCgroup(id, limits);
  cgroups.push(cg);
  return cg;
}

/**
 * The gc test's own parent cgroup and state directory, in every v1
 * hierarchy: the gc() it calls sweeps only there, and the gc() of launches in
 * other test files never looks there.
 */
const gcParent = `/tsbox-itest-gc-${process.pid}`;
let gcStateDir: string;
/** Every hierarchy's root: the v1 ones and the unified one. */
const hierarchyRoots = () =>
  readdirSync('/sys/fs/cgroup')
    .filter((h) => !lstatSync(join('/sys/fs/cgroup', h)).isSymbolicLink() && lstatSync(join('/sys/fs/cgroup', h)).isDirectory())
    .map((h) => join('/sys/fs/cgroup', h));

function gated(script: string) {
  const g = spawnGated(script);
  children.push(g.child);
  return g;
}

const cat = (dir: string, file: string) => readFileSync(join(dir, file), 'utf8').trim();

/** Every hierarchy of this host by tsbox's names: v1 controllers and named ones, and `unified`. */
function hostHierarchies(): string[] {
  return readFileSync('/proc/self/cgroup', 'utf8')
    .trim()
    .split('\n')
    .flatMap((line) => {
      const [num, controllers] = line.split(':');
      return num === '0' ? ['unified'] : controllers!.split(',');
    })
    .sort();
}

/** The caller's own cgroup in v1 hierarchy `h`. */
function own(h: string): string {
  for (const line of readFileSync('/proc/self/cgroup', 'utf8').split('\n')) {
    const [, controllers, path] = line.split(':');
    if (controllers?.split(',').includes(h)) return path!;
  }
  return '/';
}

/** A whole disk of this host and its major:minor, for the device rate limits. */
function disk(): { path: string; majMin: string } | null {
  for (const name of readdirSync('/sys/block')) {
    if (/^(loop|ram|zram|sr|fd|nbd)/.test(name) || !existsSync(`/dev/${name}`)) continue;
    return { path: `/dev/${name}`, majMin: readFileSync(`/sys/block/${name}/dev`, 'utf8').trim() };
  }
  return null;
}

beforeAll(() => {
  gcStateDir = mkdtempSync(join(tmpdir(), 'tsbox-cgroups-state-'));
  before = tsboxDirs();
});

afterEach(() => {
  for (const c of children.splice(0)) killQuietly(c);
  const errors: unknown[] = [];
  for (const cg of cgroups.splice(0)) {
    try {
      cg.destroy();
    } catch (err) {
      errors.push(err);
    }
  }
  if (errors.length > 0) throw errors[0];
});

afterAll(() => {
  rmSync(gcStateDir, { recursive: true, force: true });
  for (const root of hierarchyRoots()) {
    for (const d of [join(root, gcParent, 'tsbox'), join(root, gcParent)]) {
      try {
        rmdirSync(d);
      } catch {
        // Never made, or gone.
      }
    }
  }
});

// The v1 driver needs v1 controllers: on a pure v2 host (GitHub's runners) these
// are reported as skipped, and test/cgroup2 covers v2 (in the VM here).
describe.skipIf(detectCgroupMode() === 'v2')('cgroups on this hybrid host (v1 controllers)', () => {
  it('detects the hybrid layout', () => {
    expect(detectCgroupMode()).toBe('hybrid');
  });

  it('creates tsbox/<id> under the caller\'s own cgroup in each v1 hierarchy, with every limit written before anything runs', () => {
    const d = disk();
    expect(d, 'this host needs a whole disk under /sys/block for the device rate limits').not.toBeNull();
    // blkio.weight needs a proportional I/O scheduler (CFQ, BFQ) in the
    // kernel; without one tsbox refuses the limit, naming the files it lacks,
    // and leaves nothing (this host's kernel has none since it changed).
    const weighted = ['blkio.weight', 'blkio.bfq.weight'].some((f) => existsSync(join('/sys/fs/cgroup/blkio', f)));
    if (!weighted) {
      const refusedId = newId();
      expect(() => createCgroup(refusedId, { blkioWeight: 300 })).toThrow(/limits\.blkioWeight: the kernel has no blkio\.weight or blkio\.bfq\.weight/);
      for (const h of ['memory', 'blkio', 'pids']) expect(existsSync(join('/sys/fs/cgroup', h, own(h), 'tsbox', refusedId)), h).toBe(false);
    }
    const id = newId();
    const cg = make(
      {
        memory: '64m',
        memorySwap: '128m',
        memoryReservation: '32m',
        cpuShares: 512,
        cpus: 0.5,
        cpusetCpus: '0',
        cpusetMems: '0',
        pidsLimit: 100,
        ...(weighted ? { blkioWeight: 300 } : {}),
        deviceReadBps: [{ path: d!.path, rate: '1m' }],
        deviceWriteIops: [{ path: d!.path, rate: 100 }],
      },
      id,
    );
    expect(cg.mode).toBe('hybrid');
    expect(cg.v2Path).toBeNull();
    for (const h of ['memory', 'cpu', 'cpuacct', 'cpuset', 'pids', 'blkio', 'freezer', 'devices', 'name=systemd']) {
      expect(cg.paths[h], h).toBe(join('/sys/fs/cgroup', h.replace('name=', ''), own(h), 'tsbox', id));
      expect(existsSync(cg.paths[h]!), h).toBe(true);
    }
    // A hybrid host's unified hierarchy too: no limit there, but the
    // container's cgroup namespace is rooted at a cgroup of its own.
    expect(cg.paths.unified).toBe(join('/sys/fs/cgroup/unified/tsbox', id));

    const p = cg.paths;
    expect(cat(p.memory!, 'memory.limit_in_bytes')).toBe(String(64 * MiB));
    expect(cat(p.memory!, 'memory.memsw.limit_in_bytes')).toBe(String(128 * MiB));
    expect(cat(p.memory!, 'memory.soft_limit_in_bytes')).toBe(String(32 * MiB));
    expect(cat(p.cpu!, 'cpu.shares')).toBe('512');
    expect(cat(p.cpu!, 'cpu.cfs_period_us')).toBe('100000');
    expect(cat(p.cpu!, 'cpu.cfs_quota_us')).toBe('50000');
    expect(cat(p.cpuset!, 'cpuset.cpus')).toBe('0');
    expect(cat(p.cpuset!, 'cpuset.mems')).toBe('0');
    expect(cat(p.pids!, 'pids.max')).toBe('100');
    if (weighted) {
      const weight = existsSync(join(p.blkio!, 'blkio.weight')) ? 'blkio.weight' : 'blkio.bfq.weight';
      expect(cat(p.blkio!, weight)).toMatch(/^(default )?300$/m);
    }
    expect(cat(p.blkio!, 'blkio.throttle.read_bps_device')).toBe(`${d!.majMin} ${MiB}`);
    expect(cat(p.blkio!, 'blkio.throttle.write_iops_device')).toBe(`${d!.majMin} 100`);

    const applied = cg.applied();
    expect(applied.limits.pidsLimit).toBe(100);
    expect(applied.writes.map((w) => w.path)).toContain(join(p.memory!, 'memory.limit_in_bytes'));
    expect(applied.writes.find((w) => w.path.endsWith('cpu.cfs_quota_us'))).toEqual({ path: join(p.cpu!, 'cpu.cfs_quota_us'), value: '50000', limit: 'cpus' });
  });

  it('sets the default pids limit when none is given', () => {
    const cg = make();
    expect(cat(cg.paths.pids!, 'pids.max')).toBe(String(DEFAULT_PIDS_LIMIT));
  });

  it('places a process in every hierarchy, reads its stats, kills it and removes the cgroups', async () => {
    const id = newId();
    const cg = make({ memory: '64m' }, id);
    const g = gated('sleep 30');
    cg.place(g.pid);
    // Every hierarchy, whether or not a limit needs it.
    expect(Object.keys(cg.paths).sort()).toEqual(hostHierarchies());
    const lines = procCgroup(g.pid);
    expect(lines).toHaveLength(readFileSync('/proc/self/cgroup', 'utf8').trim().split('\n').length);
    for (const line of lines) expect(line).toMatch(new RegExp(`/tsbox/${id}$`));
    g.go();
    // Charged to the cgroup as the process runs: its first pages come after go.
    expect(await eventually(() => (cg.stats().pids.current ?? 0) >= 1 && (cg.stats().memory.current ?? 0) > 0)).toBe(true);
    const s = cg.stats();
    expect(s.pids.current).toBeGreaterThanOrEqual(1);
    expect(s.memory.current).toBeGreaterThan(0);
    expect(s.memory.peak).toBeGreaterThan(0);
    expect(s.memory.oomKills).toBe(0);
    expect(s.cpu.usageUsec).toBeGreaterThan(0);

    cg.kill();
    expect(await g.exited).toEqual({ code: null, signal: 'SIGKILL' });
    cg.destroy();
    for (const dir of Object.values(cg.paths)) expect(existsSync(dir), dir).toBe(false);
    expect(existsSync(join(stateDir, `${id}.json`))).toBe(false);
    cg.destroy(); // idempotent
  });

  workloadCases({ make, gated, procsFile: (cg) => join(cg.paths.pids!, 'cgroup.procs') });

  it('a limit the kernel rejects fails with errno, path and hint, and leaves nothing behind', () => {
    const id = newId();
    let err: unknown;
    try {
      make({ cpusetCpus: '1000' }, id);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TsboxError);
    const e = err as TsboxError;
    expect(e.step).toBe('cgroup');
    expect(e.errno).toBe(ERANGE);
    expect(e.path).toMatch(new RegExp(`/sys/fs/cgroup/cpuset/.*tsbox/${id}/cpuset.cpus$`));
    expect(e.hint).toMatch(/subset of the parent/);
    expect(tsboxDirs().filter((d) => d.includes(id))).toEqual([]);
    expect(existsSync(join(stateDir, `${id}.json`))).toBe(false);
  });

  it('gc removes the cgroups of a dead owner (killing what is left) and unmarked empty ones, and keeps the rest', async () => {
    // A dead owner: a process that has exited.
    const owner = gated('exit 0');
    owner.go();
    await owner.exited;
    for (const root of hierarchyRoots()) mkdirSync(join(root, gcParent), { recursive: true });
    const opts = { stateDir: gcStateDir, parent: gcParent };
    const orphanId = newId();
    const orphan = createCgroup(orphanId, {}, { ...opts, owner: owner.pid });
    const left = gated('sleep 30');
    orphan.place(left.pid);
    left.go();

    const live = createCgroup(newId(), {}, opts);
    cgroups.push(live);

    // An unmarked, empty tsbox/<id>, as a crash between mkdir and marker would leave.
    const strayId = newId();
    const strayDirs = ['memory', 'pids'].map((h) => join('/sys/fs/cgroup', h, gcParent, 'tsbox', strayId));
    for (const d of strayDirs) mkdirSync(d);

    try {
      const removed = gc(opts);
      expect(removed.sort()).toEqual([orphanId, strayId].sort());
      expect(await left.exited).toEqual({ code: null, signal: 'SIGKILL' });
      for (const dir of [...Object.values(orphan.paths), ...strayDirs]) expect(existsSync(dir), dir).toBe(false);
      for (const dir of Object.values(live.paths)) expect(existsSync(dir), dir).toBe(true);
    } finally {
      orphan.destroy();
      for (const d of strayDirs) {
        try {
          rmdirSync(d);
        } catch {
          // Removed by gc, as it should be.
        }
      }
    }
  });

  it('leaves no tsbox cgroup in any hierarchy', () => {
    expect(tsboxDirs()).toEqual(before);
  });
});
