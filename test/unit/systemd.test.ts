import { describe, expect, it } from 'vitest';

import { cpuSharesToWeight } from '../../ts/cgroups/limits.js';
import { expandSlice, scopeLimits, systemdScope } from '../../ts/cgroups/systemd.js';
import { TsboxError } from '../../ts/errors.js';

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(TsboxError);
    return (err as TsboxError).message;
  }
  throw new Error('not refused');
}

describe('the systemd cgroup driver', () => {
  it("expands a slice into its cgroup path as systemd does, and refuses what is not a slice's name", () => {
    expect(expandSlice('system.slice')).toBe('/system.slice');
    expect(expandSlice('machine-tenant-a.slice')).toBe('/machine.slice/machine-tenant.slice/machine-tenant-a.slice');
    expect(expandSlice('-.slice')).toBe('/');
    for (const bad of ['system', 'a/b.slice', 'a--b.slice', '-a.slice', 'a-.slice', '.slice', 'a b.slice']) {
      expect(refusal(() => expandSlice(bad)), bad).toMatch(/linux\.cgroupsPath/);
    }
  });

  it("reads cgroupsPath as runc does: slice:prefix:name, an empty slice is system.slice, an empty path :tsbox:<id>", () => {
    expect(systemdScope('system.slice:tsbox:c1', 'x')).toEqual({ slice: 'system.slice', unit: 'tsbox-c1.scope', path: '/system.slice/tsbox-c1.scope' });
    expect(systemdScope(':libpod:abc', 'x')).toEqual({ slice: 'system.slice', unit: 'libpod-abc.scope', path: '/system.slice/libpod-abc.scope' });
    expect(systemdScope('machine-t.slice::c2', 'x')).toEqual({ slice: 'machine-t.slice', unit: 'c2.scope', path: '/machine.slice/machine-t.slice/c2.scope' });
    expect(systemdScope(undefined, 'id7')).toEqual({ slice: 'system.slice', unit: 'tsbox-id7.scope', path: '/system.slice/tsbox-id7.scope' });
    expect(refusal(() => systemdScope('/machine/c1', 'x'))).toMatch(/not systemd's slice:prefix:name/);
    expect(refusal(() => systemdScope('system.slice:tsbox:', 'x'))).toMatch(/unit name/);
    expect(refusal(() => systemdScope('system.slice:ts box:c1', 'x'))).toMatch(/unit name/);
    expect(refusal(() => systemdScope('system.slice:tsbox:../c1', 'x'))).toMatch(/unit name/);
    expect(refusal(() => systemdScope('system.slice:tsbox:child.slice', 'x'))).toMatch(/gives a container a scope/);
  });

  it("gives systemd the limits in its units: swap alone, shares as a weight, CPUs as a quota per second; none for no pids limit", () => {
    expect(scopeLimits({ memory: 64 * 1024 * 1024, memorySwap: 96 * 1024 * 1024, pidsLimit: 40, cpuShares: 1024, cpus: 1.5 })).toEqual({
      memory: 64 * 1024 * 1024,
      memorySwap: 32 * 1024 * 1024,
      pids: 40,
      // The weight the driver writes to cpu.weight for the same shares.
      cpuWeight: cpuSharesToWeight(1024),
      cpuQuotaPerSecUSec: 1_500_000,
    });
    expect(scopeLimits({ cpuQuota: 50_000, cpuPeriod: 200_000, pidsLimit: -1 })).toEqual({ cpuQuotaPerSecUSec: 250_000 });
    expect(scopeLimits({ memory: 64 * 1024 * 1024, memorySwap: -1 })).toEqual({ memory: 64 * 1024 * 1024, pids: 2048 });
  });
});
