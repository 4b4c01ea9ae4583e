// ts/cgroups on a pure cgroup v2 kernel (the test VM: test/vm/), as root, with
// plain processes and no containers. The job runs the way systemd runs a
// service, in /system.slice/tsbox-vm-job.service, so tsbox's default parent is
// /system.slice and tsbox must enable the controllers there itself. The twin
// of test/integration/cgroups.test.ts (hybrid, v1 controllers).
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { blkioWeightToIoWeight, cpuSharesToWeight, createCgroup, DEFAULT_PIDS_LIMIT, detectCgroupMode, gc, type Cgroup, type CgroupLimitsInput } from '../../ts/cgroups/index.js';
import { TsboxError } from '../../ts/errors.js';
import { eventually, killQuietly, MiB, newId, spawnGated, tsboxDirs } from './support.js';
import { workloadCases } from './workloads.js';

const EBUSY = 16;
/** cpulist_parse: a CPU beyond the kernel's range. */
const ERANGE = 34;
const ROOT = '/sys/fs/cgroup';

let stateDir: string;
let before: string[];
const cgroups: Cgroup[] = [];
const children: ChildProcess[] = [];

function make(limits: CgroupLimitsInput = {}, id = newId()): Cgroup {
  const cg = createCgroup(id, limits, { stateDir });
  cgroups.push(cg);
  return cg;
}

function gated(script: string) {
  const g = spawnGated(script);
  children.push(g.child);
  return g;
}

const cat = (dir: string, file: string) => readFileSync(join(dir, file), 'utf8').trim();

/** This process's cgroup, and the parent tsbox uses: its parent. */
const own = readFileSync('/proc/self/cgroup', 'utf8').trim().replace(/^0::/, '');
const parent = join(ROOT, dirname(own));

/** A block device of the guest (the loop devices the VM's initramfs loads). */
function disk(): { path: string; majMin: string } | null {
  for (const name of readdirSync('/sys/block').sort()) {
    if (existsSync(`/dev/${name}`)) return { path: `/dev/${name}`, majMin: readFileSync(`/sys/block/${name}/dev`, 'utf8').trim() };
  }
  return null;
}

beforeAll(() => {
  stateDir = mkdtempSync(join(tmpdir(), 'tsbox-cgroups-state-'));
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
  rmSync(stateDir, { recursive: true, force: true });
});

describe('cgroups on pure v2', () => {
  it('detects v2, with the job in a service cgroup below /system.slice', () => {
    expect(detectCgroupMode()).toBe('v2');
    expect(own).toBe('/system.slice/tsbox-vm-job.service');
  });

  it('creates <parent>/tsbox/<id>, enables the controllers in the parent and in tsbox, and writes every limit before anything runs', () => {
    const d = disk();
    expect(d, 'the VM needs a block device (its initramfs loads loop) for the device rate limits').not.toBeNull();
    const id = newId();
    const cg = make(
      {
        memory: '64m',
        memorySwap: '96m',
        memoryReservation: '32m',
        cpuShares: 512,
        cpus: 0.5,
        cpusetCpus: '0',
        cpusetMems: '0',
        pidsLimit: 100,
        blkioWeight: 300,
        deviceReadBps: [{ path: d!.path, rate: '1m' }],
        deviceWriteIops: [{ path: d!.path, rate: 100 }],
      },
      id,
    );
    expect(cg.mode).toBe('v2');
    const leaf = join(parent, 'tsbox', id);
    expect(cg.v2Path).toBe(leaf);
    expect(cg.paths).toEqual({ unified: leaf });
    for (const dir of [parent, join(parent, 'tsbox')]) {
      expect(cat(dir, 'cgroup.subtree_control').split(' ').sort(), dir).toEqual(['cpu', 'cpuset', 'io', 'memory', 'pids']);
    }
    expect(cat(leaf, 'memory.max')).toBe(String(64 * MiB));
    expect(cat(leaf, 'memory.swap.max')).toBe(String(32 * MiB));
    expect(cat(leaf, 'memory.low')).toBe(String(32 * MiB));
    expect(cat(leaf, 'cpu.weight')).toBe(String(cpuSharesToWeight(512)));
    expect(cat(leaf, 'cpu.max')).toBe('50000 100000');
    expect(cat(leaf, 'cpuset.cpus')).toBe('0');
    expect(cat(leaf, 'cpuset.mems')).toBe('0');
    expect(cat(leaf, 'pids.max')).toBe('100');
    expect(cat(leaf, 'io.weight')).toBe(`default ${blkioWeightToIoWeight(300)}`);
    expect(cat(leaf, 'io.max')).toBe(`${d!.majMin} rbps=${MiB} wbps=max riops=max wiops=100`);
    expect(cg.applied().writes.find((w) => w.path.endsWith('/cpu.weight'))).toEqual({ path: join(leaf, 'cpu.weight'), value: '20', limit: 'cpuShares' });
  });

  it('sets the default pids limit when none is given, and Docker\'s implicit swap (as much as memory)', () => {
    const cg = make({ memory: '16m' });
    expect(cat(cg.v2Path!, 'pids.max')).toBe(String(DEFAULT_PIDS_LIMIT));
    expect(cat(cg.v2Path!, 'memory.swap.max')).toBe(String(16 * MiB));
  });

  it('places a process, reads its stats, kills it with cgroup.kill and removes the cgroups (gc the shared parent)', async () => {
    const id = newId();
    const cg = make({ memory: '64m' }, id);
    const g = gated('sleep 30');
    cg.place(g.pid);
    expect(readFileSync(`/proc/${g.pid}/cgroup`, 'utf8').trim()).toBe(`0::${dirname(own)}/tsbox/${id}`);
    g.go();
    expect(await eventually(() => (cg.stats().pids.current ?? 0) >= 1)).toBe(true);
    const s = cg.stats();
    expect(s.memory.current).toBeGreaterThan(0);
    expect(s.memory.peak).toBeGreaterThan(0);
    expect(s.memory.oomKills).toBe(0);
    expect(s.cpu.usageUsec).toBeGreaterThan(0);

    cg.kill();
    expect(await g.exited).toEqual({ code: null, signal: 'SIGKILL' });
    cg.destroy();
    expect(existsSync(cg.v2Path!)).toBe(false);
    expect(existsSync(join(stateDir, `${id}.json`))).toBe(false);
    // The shared parent stays for the next container, until gc finds it empty.
    expect(existsSync(join(parent, 'tsbox'))).toBe(true);
    gc({ stateDir });
    expect(existsSync(join(parent, 'tsbox'))).toBe(false);
  });

  workloadCases({ make, gated, procsFile: (cg) => join(cg.v2Path!, 'cgroup.procs') });

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
    expect(e.path).toBe(join(parent, 'tsbox', id, 'cpuset.cpus'));
    expect(e.hint).toMatch(/subset of the parent/);
    expect(tsboxDirs()).toEqual(before);
    expect(existsSync(join(stateDir, `${id}.json`))).toBe(false);
  });

  it('refuses a parent that has processes in it (no internal processes), creating nothing', () => {
    let err: unknown;
    try {
      createCgroup(newId(), {}, { stateDir, parent: own });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TsboxError);
    expect((err as TsboxError).errno).toBe(EBUSY);
    expect((err as TsboxError).hint).toMatch(/no internal processes/);
    expect(tsboxDirs()).toEqual(before);
  });

  it('gc removes the cgroups of a dead owner (killing what is left) and unmarked empty ones, and keeps the rest', async () => {
    const owner = gated('exit 0');
    owner.go();
    await owner.exited;
    const orphanId = newId();
    const orphan = createCgroup(orphanId, {}, { stateDir, owner: owner.pid });
    const left = gated('sleep 30');
    orphan.place(left.pid);
    left.go();
    const live = make();
    const strayId = newId();
    const stray = join(parent, 'tsbox', strayId);
    mkdirSync(stray);
    try {
      expect(gc({ stateDir }).sort()).toEqual([orphanId, strayId].sort());
      expect(await left.exited).toEqual({ code: null, signal: 'SIGKILL' });
      expect(existsSync(orphan.v2Path!)).toBe(false);
      expect(existsSync(stray)).toBe(false);
      expect(existsSync(live.v2Path!)).toBe(true);
    } finally {
      orphan.destroy();
      try {
        rmdirSync(stray);
      } catch {
        // Removed by gc, as it should be.
      }
    }
  });

  it('leaves no tsbox cgroup behind', () => {
    expect(tsboxDirs()).toEqual(before);
  });
});
