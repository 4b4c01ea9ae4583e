// ts/cgroups/detect.ts: v1, hybrid and v2 from /proc/self/mountinfo and
// /proc/self/cgroup fixtures, and where `tsbox/<id>` goes in each hierarchy.
import { describe, expect, it } from 'vitest';

import { cgroupDir, detectCgroupMode, ownV1Procs, parentPath, parseMountinfo, parseProcCgroup, readLayout, selfMoveSkipsGracePeriod, type ProcSource } from '../../ts/cgroups/detect.js';
import type { CgroupFs } from '../../ts/cgroups/fs.js';
import { TsboxError } from '../../ts/errors.js';

/** This development host: v1 controllers, cpu and cpuacct apart, unified mount with nothing but hugetlb. */
const HYBRID_MOUNTINFO = `22 28 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`;
const HYBRID_CGROUP = `9:name=systemd:/
8:pids:/
7:blkio:/
6:freezer:/
5:devices:/
4:memory:/process_api/3bdf6ddf
3:cpuset:/
2:cpuacct:/
1:cpu:/
0::/
`;

/** A systemd host on pure v2, the caller in a service. */
const V2_MOUNTINFO = `25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:2 - sysfs sysfs rw
26 25 0:24 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
`;
const V2_CGROUP = '0::/system.slice/app.service\n';

/** An older v1-only host (cpu and cpuacct co-mounted, no cgroup2). */
const V1_MOUNTINFO = `30 24 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,xattr,release_agent=/lib/systemd/systemd-cgroups-agent,name=systemd
34 30 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,cpu,cpuacct
35 30 0:31 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,memory
36 30 0:32 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup rw,pids
`;
const V1_CGROUP = `12:pids:/user.slice/user-1000.slice/session-2.scope
4:memory:/user.slice/user-1000.slice/session-2.scope
3:cpu,cpuacct:/user.slice
1:name=systemd:/user.slice/user-1000.slice/session-2.scope
`;

const noFs: CgroupFs = {
  mkdir: () => {},
  rmdir: () => {},
  read: (p) => {
    if (p === '/sys/fs/cgroup/unified/cgroup.controllers') return 'hugetlb\n';
    if (p === '/sys/fs/cgroup/cgroup.controllers') return 'cpuset cpu io memory pids\n';
    throw Object.assign(new Error('ENOENT'), { errno: -2, code: 'ENOENT' });
  },
  write: () => {},
  exists: () => false,
  subdirs: () => [],
  owners: (paths) => paths.map(() => null),
  pidfdOpen: () => null,
  pidfdSignal: () => false,
  closePidfd: () => {},
  attachDeviceFilter: () => {},
  detachDeviceFilter: () => {},
};

const src = (mountinfo: string, cgroup: string): ProcSource => ({ mountinfo, cgroup });

describe('detectCgroupMode', () => {
  it('hybrid: v1 controllers and a cgroup2 mount', () => {
    expect(detectCgroupMode(src(HYBRID_MOUNTINFO, HYBRID_CGROUP))).toBe('hybrid');
  });

  it('v2: a cgroup2 mount and no v1 controller', () => {
    expect(detectCgroupMode(src(V2_MOUNTINFO, V2_CGROUP))).toBe('v2');
  });

  it('v2 even with a named v1 hierarchy (name=systemd) beside it', () => {
    const mi = `${V2_MOUNTINFO}40 26 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd\n`;
    expect(detectCgroupMode(src(mi, V2_CGROUP))).toBe('v2');
  });

  it('v1: controllers on v1 and no cgroup2', () => {
    expect(detectCgroupMode(src(V1_MOUNTINFO, V1_CGROUP))).toBe('v1');
  });

  it('no cgroup mount at all is an error with a hint', () => {
    const e = (() => {
      try {
        detectCgroupMode(src('22 28 0:21 / /sys rw - sysfs sysfs rw\n', ''));
      } catch (err) {
        return err as TsboxError;
      }
      return null;
    })();
    expect(e).toBeInstanceOf(TsboxError);
    expect(e!.step).toBe('cgroup');
    expect(e!.hint).toMatch(/mount cgroup2/);
  });
});

describe('parseMountinfo', () => {
  it('maps each v1 controller to its hierarchy, co-mounted ones to the same', () => {
    const { v1, unified } = parseMountinfo(V1_MOUNTINFO);
    expect(unified).toBeNull();
    expect(v1.get('cpu')).toEqual({ mountpoint: '/sys/fs/cgroup/cpu,cpuacct', root: '/', controllers: ['cpu', 'cpuacct'] });
    expect(v1.get('cpuacct')).toEqual(v1.get('cpu'));
    expect(v1.get('memory')?.mountpoint).toBe('/sys/fs/cgroup/memory');
    expect(v1.get('name=systemd')?.controllers).toEqual(['name=systemd']);
    expect(v1.has('xattr')).toBe(false);
  });

  it('finds the unified mount of a hybrid host', () => {
    const { v1, unified } = parseMountinfo(HYBRID_MOUNTINFO);
    expect(unified).toEqual({ mountpoint: '/sys/fs/cgroup/unified', root: '/' });
    expect([...v1.keys()].sort()).toEqual(['blkio', 'cpu', 'cpuacct', 'cpuset', 'devices', 'freezer', 'memory', 'name=systemd', 'pids']);
  });

  it('unescapes mount points and keeps a bind-mounted subtree\'s root', () => {
    const { unified } = parseMountinfo('50 40 0:24 /lxc/c1 /var/lib/my\\040cg rw - cgroup2 cgroup2 rw\n');
    expect(unified).toEqual({ mountpoint: '/var/lib/my cg', root: '/lxc/c1' });
  });

  it('prefers /sys/fs/cgroup when a hierarchy is mounted twice', () => {
    const mi = `60 1 0:32 / /mnt/mem rw - cgroup cgroup rw,memory\n${HYBRID_MOUNTINFO}70 1 0:24 / /mnt/cg2 rw - cgroup2 cgroup2 rw\n`;
    const { v1, unified } = parseMountinfo(mi);
    expect(v1.get('memory')?.mountpoint).toBe('/sys/fs/cgroup/memory');
    expect(unified?.mountpoint).toBe('/sys/fs/cgroup/unified');
  });

  it('handles optional fields before the separator', () => {
    const { unified } = parseMountinfo('26 25 0:24 / /sys/fs/cgroup rw shared:4 master:1 - cgroup2 cgroup2 rw\n');
    expect(unified?.mountpoint).toBe('/sys/fs/cgroup');
  });
});

describe('parseProcCgroup', () => {
  it('reads v1 controllers (split when co-mounted) and the unified path', () => {
    const own = parseProcCgroup(`${V1_CGROUP}0::/user.slice/user-1000.slice/session-2.scope\n`);
    expect(own.v1.get('cpu')).toBe('/user.slice');
    expect(own.v1.get('cpuacct')).toBe('/user.slice');
    expect(own.v1.get('memory')).toBe('/user.slice/user-1000.slice/session-2.scope');
    expect(own.unified).toBe('/user.slice/user-1000.slice/session-2.scope');
  });

  it('pure v2 has only the unified line', () => {
    const own = parseProcCgroup(V2_CGROUP);
    expect(own.v1.size).toBe(0);
    expect(own.unified).toBe('/system.slice/app.service');
  });
});

describe('readLayout and parentPath: where tsbox/<id> goes', () => {
  it('hybrid: the caller\'s own cgroup per v1 hierarchy; the unified controllers are read', () => {
    const layout = readLayout(noFs, src(HYBRID_MOUNTINFO, HYBRID_CGROUP));
    expect(layout.mode).toBe('hybrid');
    expect(layout.unifiedControllers).toEqual(['hugetlb']);
    expect(parentPath(layout, 'memory')).toBe('/process_api/3bdf6ddf');
    expect(parentPath(layout, 'pids')).toBe('/');
    expect(cgroupDir(layout.v1.get('memory')!, parentPath(layout, 'memory'))).toBe('/sys/fs/cgroup/memory/process_api/3bdf6ddf');
  });

  it('v2: the parent of the caller\'s cgroup (which holds the caller, so cannot enable controllers)', () => {
    const layout = readLayout(noFs, src(V2_MOUNTINFO, V2_CGROUP));
    expect(layout.mode).toBe('v2');
    expect(layout.unifiedControllers).toEqual(['cpuset', 'cpu', 'io', 'memory', 'pids']);
    expect(parentPath(layout, 'unified')).toBe('/system.slice');
    expect(cgroupDir(layout.unified!, parentPath(layout, 'unified'))).toBe('/sys/fs/cgroup/system.slice');
  });

  it('v2: the root itself when the caller is in the root cgroup (the root may hold processes)', () => {
    const layout = readLayout(noFs, src(V2_MOUNTINFO, '0::/\n'));
    expect(parentPath(layout, 'unified')).toBe('/');
    expect(cgroupDir(layout.unified!, '/')).toBe('/sys/fs/cgroup');
  });

  it('a configured parent wins in every hierarchy', () => {
    const layout = readLayout(noFs, src(HYBRID_MOUNTINFO, HYBRID_CGROUP));
    expect(parentPath(layout, 'memory', '/tsbox.slice')).toBe('/tsbox.slice');
    expect(parentPath(layout, 'unified', '/tsbox.slice')).toBe('/tsbox.slice');
  });

  it('maps cgroup paths through a bind-mounted subtree, and refuses paths outside it', () => {
    const mount = { mountpoint: '/sys/fs/cgroup', root: '/lxc/c1' };
    expect(cgroupDir(mount, '/lxc/c1/init.scope')).toBe('/sys/fs/cgroup/init.scope');
    expect(cgroupDir(mount, '/lxc/c1')).toBe('/sys/fs/cgroup');
    expect(() => cgroupDir(mount, '/other')).toThrow(/not below the mounted subtree/);
    expect(() => cgroupDir({ mountpoint: '/sys/fs/cgroup', root: '/' }, '/../../x')).toThrow(/outside this cgroup namespace/);
  });
});

describe('selfMoveSkipsGracePeriod (a v1 thread entering its container\'s cgroups)', () => {
  it('is the kernel from 6.5 on, by uname -r', () => {
    for (const rel of ['6.5.0', '6.18.44-fc-v1252', '6.10.3-arch1-1', '7.0.0']) expect(selfMoveSkipsGracePeriod(rel), rel).toBe(true);
    for (const rel of ['6.4.16', '6.1.0-27-amd64', '5.15.0-126-generic', '5.4.0', '4.19.0-26-amd64', '3.10.0-1160.el7.x86_64']) expect(selfMoveSkipsGracePeriod(rel), rel).toBe(false);
    // What cannot be read is taken for old.
    for (const rel of ['', 'unknown', 'v6.8']) expect(selfMoveSkipsGracePeriod(rel), rel).toBe(false);
  });
});

describe('ownV1Procs (the grace-period prewarm)', () => {
  it("names the caller's own cgroup.procs in the pids hierarchy, on hybrid and v1", () => {
    expect(ownV1Procs(src(HYBRID_MOUNTINFO, HYBRID_CGROUP))).toBe('/sys/fs/cgroup/pids/cgroup.procs');
    expect(ownV1Procs(src(V1_MOUNTINFO, V1_CGROUP))).toBe('/sys/fs/cgroup/pids/user.slice/user-1000.slice/session-2.scope/cgroup.procs');
  });

  it('takes another controller when there is no pids hierarchy, never a name= one', () => {
    const mi = V1_MOUNTINFO.split('\n').filter((l) => !l.includes('rw,pids')).join('\n');
    const cg = V1_CGROUP.split('\n').filter((l) => !l.includes(':pids:')).join('\n');
    expect(ownV1Procs(src(mi, cg))).toBe('/sys/fs/cgroup/memory/user.slice/user-1000.slice/session-2.scope/cgroup.procs');
  });

  it('is null on pure v2', () => {
    expect(ownV1Procs(src(V2_MOUNTINFO, V2_CGROUP))).toBeNull();
  });
});
