// ts/cgroups/limits.ts and the controllers' writes: Docker's sizes and
// semantics, the v1↔v2 conversions, and which file gets which value on v1 and
// on v2. Pure: no filesystem.
import { readFileSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

import type { LimitWrite } from '../../ts/cgroups/controller.js';
import { cpu } from '../../ts/cgroups/cpu.js';
import { cpuset } from '../../ts/cgroups/cpuset.js';
import { io } from '../../ts/cgroups/io.js';
import {
  blkioWeightToIoWeight,
  cgroupLimitsSchema,
  cpuSharesToWeight,
  cpusToQuota,
  cpuWeightToShares,
  DEFAULT_PIDS_LIMIT,
  defaultPidsLimit,
  formatCpuMax,
  ioWeightToBlkioWeight,
  parseByteSize,
  parseCpuMax,
  parseLimits,
  type CgroupLimitsInput,
} from '../../ts/cgroups/limits.js';
import { memory } from '../../ts/cgroups/memory.js';
import { pids } from '../../ts/cgroups/pids.js';
import { TsboxError } from '../../ts/errors.js';

const KiB = 1024;
const MiB = 1024 ** 2;
const GiB = 1024 ** 3;

function configError(fn: () => unknown): TsboxError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(TsboxError);
    expect((err as TsboxError).step).toBe('config');
    return err as TsboxError;
  }
  throw new Error('expected a config error');
}

/** `file=value` per write, as the driver would write them (every candidate file). */
const flat = (ws: LimitWrite[]) => ws.map((w) => `${w.hierarchy}:${w.files.map((f) => `${f.file}=${f.value}`).join('|')}`);

describe('parseByteSize: Docker byte sizes', () => {
  it.each([
    ['64m', 64 * MiB],
    ['1g', GiB],
    ['512k', 512 * KiB],
    ['1.5g', 1.5 * GiB],
    ['64M', 64 * MiB],
    ['64MB', 64 * MiB],
    ['64MiB', 64 * MiB],
    ['64mb', 64 * MiB],
    ['2t', 2 * 1024 ** 4],
    ['100', 100],
    ['100b', 100],
    [' 8 m ', 8 * MiB],
  ])('%s is %d bytes', (input, bytes) => {
    expect(parseByteSize(input)).toBe(bytes);
  });

  it('takes numbers as bytes', () => {
    expect(parseByteSize(67108864)).toBe(67108864);
    expect(parseByteSize(0)).toBe(0);
  });

  it.each(['', '64x', 'm', '-1', '1e6', '64 mm', '1.2.3g', '0x10', '10i'])('rejects %j with a clear message and a hint', (bad) => {
    const e = configError(() => parseByteSize(bad));
    expect(e.message).toContain(`invalid size ${JSON.stringify(bad)}`);
    expect(e.hint).toMatch(/64m = 64 MiB/);
  });

  it('rejects negative, fractional and unsafe numbers', () => {
    for (const bad of [-1, 1.5, Number.MAX_SAFE_INTEGER + 2, Number.NaN]) configError(() => parseByteSize(bad));
  });

  it('rejects a size too large to be exact', () => {
    expect(configError(() => parseByteSize('9999999p')).message).toMatch(/too large/);
  });
});

describe('cgroupLimitsSchema / parseLimits', () => {
  it('fills in the default pids limit, and nothing else', () => {
    expect(parseLimits({})).toEqual({ pidsLimit: DEFAULT_PIDS_LIMIT });
    expect(parseLimits(undefined)).toEqual({ pidsLimit: DEFAULT_PIDS_LIMIT });
    // 4096, or a sixteenth of pid_max when smaller (eight fork bombs leave half of it).
    expect(DEFAULT_PIDS_LIMIT).toBe(defaultPidsLimit(Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8'))));
    expect([defaultPidsLimit(4194304), defaultPidsLimit(32768), defaultPidsLimit(300), defaultPidsLimit(null)]).toEqual([4096, 2048, 64, 4096]);
  });

  it('parses sizes in every size field, device rates included', () => {
    const l = parseLimits({
      memory: '1g',
      memorySwap: '2g',
      memoryReservation: '512m',
      deviceReadBps: [{ path: '/dev/sda', rate: '1m' }],
      deviceWriteBps: [{ path: '/dev/sda', rate: 1000 }],
      deviceReadIops: [{ path: '/dev/sda', rate: 200 }],
    });
    expect(l).toMatchObject({ memory: GiB, memorySwap: 2 * GiB, memoryReservation: 512 * MiB });
    expect(l.deviceReadBps).toEqual([{ path: '/dev/sda', rate: MiB }]);
    expect(l.deviceWriteBps).toEqual([{ path: '/dev/sda', rate: 1000 }]);
  });

  it('takes -1 (number or string) for unlimited swap and no pids limit', () => {
    expect(parseLimits({ memory: '1g', memorySwap: -1 }).memorySwap).toBe(-1);
    expect(parseLimits({ memory: '1g', memorySwap: '-1' }).memorySwap).toBe(-1);
    expect(parseLimits({ pidsLimit: -1 }).pidsLimit).toBe(-1);
  });

  it('is idempotent: its output parses to itself (the options schema may embed it)', () => {
    const once = parseLimits({ memory: '64m', memorySwap: '-1', cpus: 1.5, deviceReadBps: [{ path: '/dev/sda', rate: '1m' }] });
    expect(parseLimits(once)).toEqual(once);
  });

  it.each<[CgroupLimitsInput, string, RegExp]>([
    [{ memory: '64x' }, 'limits.memory', /invalid size "64x"/],
    [{ memory: 0 }, 'limits.memory', /at least 6m \(6291456 bytes\)/],
    [{ memory: 100 }, 'limits.memory', /at least 6m .*a container needs a few MB to start in/],
    [{ memory: '6291455' }, 'limits.memory', /at least 6m/],
    [{ memorySwap: '1g' }, 'limits.memorySwap', /set memory too/],
    [{ memory: '1g', memorySwap: '512m' }, 'limits.memorySwap', /at least memory/],
    [{ memory: '64m', memoryReservation: '128m' }, 'limits.memoryReservation', /not be more than memory/],
    [{ cpus: 1, cpuQuota: 50000 }, 'limits.cpus', /either cpus or cpuQuota/],
    [{ cpus: 0.001 }, 'limits.cpus', /at least 0.01/],
    [{ cpuShares: 1 }, 'limits.cpuShares', /./],
    [{ cpuShares: 300000 }, 'limits.cpuShares', /./],
    [{ cpuQuota: 500 }, 'limits.cpuQuota', /./],
    [{ cpuPeriod: 999 }, 'limits.cpuPeriod', /./],
    [{ cpuPeriod: 1_000_001 }, 'limits.cpuPeriod', /./],
    [{ pidsLimit: 0 }, 'limits.pidsLimit', /-1 for no limit/],
    [{ pidsLimit: -2 }, 'limits.pidsLimit', /./],
    [{ blkioWeight: 5 }, 'limits.blkioWeight', /./],
    [{ blkioWeight: 1001 }, 'limits.blkioWeight', /./],
    [{ cpusetCpus: '0-3,x' }, 'limits.cpusetCpus', /list such as 0-3,5/],
    [{ cpusetCpus: '3-1' }, 'limits.cpusetCpus', /low to high/],
    [{ deviceReadBps: [{ path: 'sda', rate: '1m' }] }, 'limits.deviceReadBps[0].path', /absolute path/],
    [{ deviceReadIops: [{ path: '/dev/sda', rate: 1.5 }] }, 'limits.deviceReadIops[0].rate', /./],
    [{ memroy: '1g' } as CgroupLimitsInput, 'limits.memroy', /unknown limit/],
  ])('rejects %j at %s', (input, path, message) => {
    const e = configError(() => parseLimits(input));
    expect(e.path).toBe(path);
    expect(e.issues[0]).toEqual({ path, message: expect.stringMatching(message) });
  });

  it('lists every problem, each with its JSON path', () => {
    const e = configError(() => parseLimits({ memory: 'lots', pidsLimit: 0, cpuShares: 1 }));
    expect(e.issues.map((i) => i.path).sort()).toEqual(['limits.cpuShares', 'limits.memory', 'limits.pidsLimit']);
    expect(e.message).toMatch(/and 2 more/);
  });

  it('unified: a cgroup v2 file name each, never one the runtime manages (who is in the cgroup, its children\'s controllers, its state)', () => {
    expect(parseLimits({ unified: { 'memory.high': '64M', 'hugetlb.2MB.max': '0' } }).unified).toEqual({ 'memory.high': '64M', 'hugetlb.2MB.max': '0' });
    for (const [key, message] of [
      ['cgroup.procs', '"cgroup.procs" is a file the runtime manages: it cannot be set'],
      ['cgroup.subtree_control', '"cgroup.subtree_control" is a file the runtime manages: it cannot be set'],
      ['../memory.max', '"../memory.max" is not a cgroup v2 file name, such as memory.high'],
      ['memory', '"memory" is not a cgroup v2 file name, such as memory.high'],
    ]) {
      const e = configError(() => parseLimits({ unified: { [key!]: '1' } }));
      expect(e.issues).toEqual([{ path: `limits.unified.${key}`, message }]);
    }
  });

  it('is a zod schema the options schema can embed', () => {
    expect(cgroupLimitsSchema.safeParse({ memory: '1g' }).success).toBe(true);
    expect(cgroupLimitsSchema.safeParse({ memory: 'x' }).success).toBe(false);
  });
});

describe('cpu shares ↔ weight (linear, as runc and crun)', () => {
  it.each([
    [0, 0],
    [1, 1],
    [2, 1],
    [256, 10],
    [1024, 39],
    [262_144, 10_000],
    [500_000, 10_000],
  ])('shares %d → weight %d', (shares, weight) => {
    expect(cpuSharesToWeight(shares)).toBe(weight);
  });

  it('weight → shares → weight is exact for every weight', () => {
    for (let w = 1; w <= 10_000; w++) expect(cpuSharesToWeight(cpuWeightToShares(w))).toBe(w);
    expect(cpuWeightToShares(1)).toBe(2);
    expect(cpuWeightToShares(10_000)).toBe(262_144);
    expect(cpuWeightToShares(0)).toBe(0);
  });

  it('shares → weight → shares stays within one weight step (262142/9999 shares)', () => {
    for (let s = 2; s <= 262_144; s += 97) {
      const back = cpuWeightToShares(cpuSharesToWeight(s));
      expect(back).toBeLessThanOrEqual(s);
      expect(s - back).toBeLessThan(262_142 / 9999);
    }
  });
});

describe('blkio weight ↔ io weight', () => {
  it.each([
    [10, 1],
    [100, 910],
    [500, 4950],
    [1000, 10_000],
    [0, 0],
  ])('blkio %d → io %d', (blkio, ioWeight) => {
    expect(blkioWeightToIoWeight(blkio)).toBe(ioWeight);
  });

  it('blkio → io → blkio is exact, and io → blkio → io within one blkio step', () => {
    for (let b = 10; b <= 1000; b++) expect(ioWeightToBlkioWeight(blkioWeightToIoWeight(b))).toBe(b);
    for (let w = 1; w <= 10_000; w++) {
      const back = blkioWeightToIoWeight(ioWeightToBlkioWeight(w));
      expect(back).toBeGreaterThanOrEqual(w);
      expect(back - w).toBeLessThan(9999 / 990);
    }
  });
});

describe('cpus and quota/period ↔ cpu.max', () => {
  it('cpus 1.5 is quota 150000 per period 100000', () => {
    expect(cpusToQuota(1.5)).toEqual({ quota: 150_000, period: 100_000 });
    expect(cpusToQuota(0.01)).toEqual({ quota: 1000, period: 100_000 });
    expect(cpusToQuota(2, 50_000)).toEqual({ quota: 100_000, period: 50_000 });
  });

  it('formats and parses cpu.max', () => {
    expect(formatCpuMax(150_000, 100_000)).toBe('150000 100000');
    expect(formatCpuMax(undefined, 50_000)).toBe('max 50000');
    expect(formatCpuMax(-1, undefined)).toBe('max 100000');
    expect(formatCpuMax(20_000, undefined)).toBe('20000 100000');
    expect(parseCpuMax('150000 100000\n')).toEqual({ quota: 150_000, period: 100_000 });
    expect(parseCpuMax('max 100000')).toEqual({ quota: -1, period: 100_000 });
    expect(() => parseCpuMax('lots 1')).toThrow(TsboxError);
  });
});

describe('which file gets which value', () => {
  const devices = new Map([['/dev/sda', '8:0'], ['/dev/vdb', '254:16']]);
  const writes = (c: typeof memory, version: 1 | 2, input: CgroupLimitsInput) => flat(c.writes(version, parseLimits(input), devices));

  it('memory: limit, then swap (memory+swap on v1, swap alone on v2), then the reservation', () => {
    const l = { memory: '64m', memorySwap: '128m', memoryReservation: '32m' };
    expect(writes(memory, 1, l)).toEqual([
      `memory:memory.limit_in_bytes=${64 * MiB}`,
      `memory:memory.memsw.limit_in_bytes=${128 * MiB}`,
      `memory:memory.soft_limit_in_bytes=${32 * MiB}`,
    ]);
    expect(writes(memory, 2, l)).toEqual([`unified:memory.max=${64 * MiB}`, `unified:memory.swap.max=${64 * MiB}`, `unified:memory.low=${32 * MiB}`]);
  });

  it('memory: Docker\'s default swap (as much as memory) is optional; an explicit one is not; -1 is unlimited', () => {
    const def = memory.writes(2, parseLimits({ memory: '64m' }), devices);
    expect(flat(def)).toEqual([`unified:memory.max=${64 * MiB}`, `unified:memory.swap.max=${64 * MiB}`]);
    expect(def[1]!.optional).toBe(true);
    expect(memory.writes(1, parseLimits({ memory: '64m' }), devices)[1]).toMatchObject({ files: [{ file: 'memory.memsw.limit_in_bytes', value: String(128 * MiB) }], optional: true });
    expect(memory.writes(2, parseLimits({ memory: '64m', memorySwap: '64m' }), devices)[1]).toMatchObject({ files: [{ value: '0' }], optional: false });
    expect(memory.writes(1, parseLimits({ memory: '64m', memorySwap: -1 }), devices)[1]).toMatchObject({ files: [{ value: '-1' }], optional: true });
    expect(memory.writes(2, parseLimits({ memory: '64m', memorySwap: -1 }), devices)[1]).toMatchObject({ files: [{ value: 'max' }], optional: true });
    expect(writes(memory, 2, {})).toEqual([]);
  });

  it('cpu: shares as-is on v1 and converted to weight on v2; period before quota', () => {
    expect(writes(cpu, 1, { cpuShares: 256, cpus: 1.5 })).toEqual(['cpu:cpu.shares=256', 'cpu:cpu.cfs_period_us=100000', 'cpu:cpu.cfs_quota_us=150000']);
    expect(writes(cpu, 2, { cpuShares: 256, cpus: 1.5 })).toEqual(['unified:cpu.weight=10', 'unified:cpu.max=150000 100000']);
    expect(writes(cpu, 1, { cpuQuota: 20000, cpuPeriod: 50000 })).toEqual(['cpu:cpu.cfs_period_us=50000', 'cpu:cpu.cfs_quota_us=20000']);
    expect(writes(cpu, 2, { cpuPeriod: 50000 })).toEqual(['unified:cpu.max=max 50000']);
    expect(writes(cpu, 2, { cpuQuota: -1 })).toEqual(['unified:cpu.max=max 100000']);
    expect(cpu.writes(1, parseLimits({ cpus: 2 }), devices).map((w) => w.limit)).toEqual(['cpus', 'cpus']);
  });

  it('cpuset: mems, then cpus, same names on v1 and v2', () => {
    expect(writes(cpuset, 1, { cpusetCpus: '0-3', cpusetMems: '0' })).toEqual(['cpuset:cpuset.mems=0', 'cpuset:cpuset.cpus=0-3']);
    expect(writes(cpuset, 2, { cpusetCpus: '1' })).toEqual(['unified:cpuset.cpus=1']);
  });

  it('pids: the default, a given limit, and max for -1', () => {
    expect(writes(pids, 1, {})).toEqual([`pids:pids.max=${DEFAULT_PIDS_LIMIT}`]);
    expect(writes(pids, 2, { pidsLimit: 64 })).toEqual(['unified:pids.max=64']);
    expect(writes(pids, 2, { pidsLimit: -1 })).toEqual(['unified:pids.max=max']);
    expect(pids.required(parseLimits({ pidsLimit: -1 }))).toBe(false);
    expect(pids.required(parseLimits({}))).toBe(true);
  });

  it('io: weight in every weight file, one throttle line per device and file (v1) or per device (v2)', () => {
    const l = {
      blkioWeight: 500,
      deviceReadBps: [{ path: '/dev/sda', rate: '1m' }],
      deviceWriteBps: [{ path: '/dev/sda', rate: '2m' }],
      deviceReadIops: [{ path: '/dev/vdb', rate: 100 }],
      deviceWriteIops: [{ path: '/dev/sda', rate: 50 }],
    };
    expect(writes(io, 1, l)).toEqual([
      'blkio:blkio.weight=500|blkio.bfq.weight=500',
      `blkio:blkio.throttle.read_bps_device=8:0 ${MiB}`,
      `blkio:blkio.throttle.write_bps_device=8:0 ${2 * MiB}`,
      'blkio:blkio.throttle.read_iops_device=254:16 100',
      'blkio:blkio.throttle.write_iops_device=8:0 50',
    ]);
    expect(writes(io, 2, l)).toEqual([
      'unified:io.weight=default 4950|io.bfq.weight=500',
      `unified:io.max=8:0 rbps=${MiB} wbps=${2 * MiB} wiops=50`,
      'unified:io.max=254:16 riops=100',
    ]);
  });

  it('no limit, no write (but the pids default)', () => {
    const l = parseLimits({});
    for (const c of [memory, cpu, cpuset, io]) {
      expect(c.required(l)).toBe(false);
      expect(c.writes(1, l, devices)).toEqual([]);
      expect(c.writes(2, l, devices)).toEqual([]);
    }
  });
});
