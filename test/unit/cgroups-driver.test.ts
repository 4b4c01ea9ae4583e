// The cgroup driver (ts/cgroups/driver.ts, teardown.ts, gc.ts) against fixture
// trees in a temp dir: a fake v2 tree, a fake hybrid tree and a fake v1 tree
// whose control files are plain files. A small fake kernel (FakeKernel) does
// what cgroupfs does on mkdir (control files appear), rmdir (EBUSY while
// populated), cgroup.subtree_control (EBUSY with processes; only controllers
// the parent offers) and cgroup.kill/pidfd_send_signal(2) (processes leave), and records
// every call, so the tests see which files get which values, in which order,
// and that no failure leaves anything behind. No root needed.
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { containerStats, createCgroup, prepareCgroup, gc, updateCgroup, type Cgroup, type CgroupFs, type CgroupLimitsInput, type CreateOptions, type ProcSource } from '../../ts/cgroups/index.js';
import { DEFAULT_PIDS_LIMIT } from '../../ts/cgroups/limits.js';
import { kmemLimitEnforced } from '../../ts/cgroups/memory.js';
import { TsboxError } from '../../ts/errors.js';

const MiB = 1024 ** 2;
const errnos = { EPERM: 1, ENOENT: 2, ESRCH: 3, EACCES: 13, EBUSY: 16, EEXIST: 17, ENODEV: 19, EINVAL: 22 } as const;
type Code = keyof typeof errnos;

function sysError(code: Code, syscall: string, path: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: ${syscall} '${path}'`), { errno: -errnos[code], code, syscall, path });
}

const V2_FILES: Record<string, Record<string, string>> = {
  core: { 'cgroup.procs': '', 'cgroup.subtree_control': '', 'cgroup.events': 'populated 0\nfrozen 0\n', 'cgroup.freeze': '0', 'cgroup.kill': '', 'cgroup.max.descendants': 'max', 'cpu.stat': 'usage_usec 0\nuser_usec 0\nsystem_usec 0\n' },
  memory: { 'memory.max': 'max', 'memory.high': 'max', 'memory.swap.max': 'max', 'memory.low': '0', 'memory.current': '0', 'memory.peak': '0', 'memory.events': 'low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n' },
  cpu: { 'cpu.weight': '100', 'cpu.max': 'max 100000' },
  cpuset: { 'cpuset.cpus': '', 'cpuset.mems': '' },
  pids: { 'pids.max': 'max', 'pids.current': '0', 'pids.events': 'max 0\n' },
  io: { 'io.weight': 'default 100', 'io.max': '' },
  hugetlb: { 'hugetlb.2MB.max': 'max', 'hugetlb.2MB.rsvd.max': 'max', 'hugetlb.1GB.max': 'max', 'hugetlb.1GB.rsvd.max': 'max' },
};

const V1_FILES: Record<string, Record<string, string>> = {
  memory: {
    'memory.limit_in_bytes': '9223372036854771712',
    'memory.memsw.limit_in_bytes': '9223372036854771712',
    'memory.soft_limit_in_bytes': '9223372036854771712',
    'memory.usage_in_bytes': '0',
    'memory.max_usage_in_bytes': '0',
    'memory.oom_control': 'oom_kill_disable 0\nunder_oom 0\noom_kill 0\n',
    'memory.swappiness': '60',
    'memory.kmem.limit_in_bytes': '9223372036854771712',
    'memory.kmem.tcp.limit_in_bytes': '9223372036854771712',
  },
  cpu: { 'cpu.shares': '1024', 'cpu.cfs_period_us': '100000', 'cpu.cfs_quota_us': '-1', 'cpu.stat': 'nr_periods 0\nnr_throttled 0\nthrottled_time 0\n' },
  cpuacct: { 'cpuacct.usage': '0', 'cpuacct.usage_user': '0', 'cpuacct.usage_sys': '0', 'cpuacct.stat': 'user 0\nsystem 0\n' },
  cpuset: { 'cpuset.cpus': '', 'cpuset.mems': '', 'cpuset.effective_cpus': '', 'cpuset.effective_mems': '' },
  pids: { 'pids.max': 'max', 'pids.current': '0', 'pids.events': 'max 0\n' },
  blkio: { 'blkio.bfq.weight': '100', 'blkio.bfq.weight_device': '', 'blkio.throttle.read_bps_device': '', 'blkio.throttle.write_bps_device': '', 'blkio.throttle.read_iops_device': '', 'blkio.throttle.write_iops_device': '' },
  freezer: { 'freezer.state': 'THAWED' },
  devices: { 'devices.allow': '', 'devices.deny': '', 'devices.list': 'a *:* rwm\n' },
  hugetlb: { 'hugetlb.2MB.limit_in_bytes': '9223372036854771712', 'hugetlb.1GB.limit_in_bytes': '9223372036854771712' },
  net_cls: { 'net_cls.classid': '0' },
  net_prio: { 'net_prio.ifpriomap': 'lo 0\n' },
};

/**
 * A cgroup filesystem made of plain files, acting like the kernel where the
 * driver depends on it. `ops` records mkdir, rmdir, write and kill (a pidfd's signal) in order.
 */
class FakeKernel implements CgroupFs {
  readonly ops: string[] = [];
  /** Calls that fail: `write <path>`, `mkdir <path>`, `rmdir <path>` (path suffix) → errno code, and how often (default always). */
  readonly failures: { op: string; suffix: string; code: Code; times: number }[] = [];
  /** Files this kernel does not have (by name), e.g. memory.swap.max without swap accounting. */
  readonly missing = new Set<string>();
  /** Mount point → v1 hierarchy name, or 'unified'. */
  readonly mounts = new Map<string, string>();

  constructor(readonly root: string) {}

  fail(op: 'write' | 'mkdir' | 'rmdir' | 'bpf', suffix: string, code: Code, times = Infinity): void {
    this.failures.push({ op, suffix, code, times });
  }

  #check(op: string, path: string): void {
    const f = this.failures.find((x) => x.op === op && path.endsWith(x.suffix) && x.times > 0);
    if (f) {
      f.times--;
      throw sysError(f.code, op, path);
    }
  }

  hierarchyOf(path: string): string {
    let best = '';
    for (const m of this.mounts.keys()) if ((path === m || path.startsWith(`${m}/`)) && m.length > best.length) best = m;
    return this.mounts.get(best)!;
  }

  /** Fills a new cgroup directory the way the kernel would. */
  populate(dir: string, isRoot = false): void {
    const h = this.hierarchyOf(dir);
    const files: Record<string, string> = {};
    if (h === 'unified') {
      const controllers = isRoot ? this.rootControllers : readFileSync(join(dirname(dir), 'cgroup.subtree_control'), 'utf8').trim().split(/\s+/).filter(Boolean);
      Object.assign(files, V2_FILES.core, { 'cgroup.controllers': controllers.join(' ') });
      if (!isRoot) files['cgroup.type'] = 'domain';
      for (const c of controllers) Object.assign(files, V2_FILES[c]);
      if (controllers.includes('cpu')) files['cpu.stat'] += 'nr_periods 0\nnr_throttled 0\nthrottled_usec 0\n';
    } else {
      Object.assign(files, { 'cgroup.procs': '', tasks: '', notify_on_release: '0' }, V1_FILES[h]);
      if (isRoot && h === 'cpuset') Object.assign(files, { 'cpuset.cpus': '0-3', 'cpuset.mems': '0', 'cpuset.effective_cpus': '0-3', 'cpuset.effective_mems': '0' });
    }
    for (const [name, value] of Object.entries(files)) if (!this.missing.has(name)) writeFileSync(join(dir, name), value);
  }

  rootControllers = ['cpuset', 'cpu', 'io', 'memory', 'pids'];

  /**
   * As an ordinary user: the cgroups delegated to it (their directory,
   * cgroup.procs, cgroup.subtree_control and cgroup.threads are its), and
   * every one it makes. null: as root, everything is writable.
   */
  owned: Set<string> | null = null;

  writable(path: string): boolean {
    if (this.owned === null) return true;
    if (this.owned.has(path)) return true;
    const dir = dirname(path);
    const file = path.slice(dir.length + 1);
    return this.owned.has(dir) && (['cgroup.procs', 'cgroup.subtree_control', 'cgroup.threads'].includes(file) || this.made.has(dir));
  }

  /** Cgroups made through mkdir (as the user: all their files are its). */
  readonly made = new Set<string>();

  mkdir(path: string): void {
    this.#check('mkdir', path);
    if (existsSync(dirname(path)) && !this.writable(dirname(path))) throw sysError('EACCES', 'mkdir', path);
    this.owned?.add(path);
    this.made.add(path);
    if (existsSync(path)) throw sysError('EEXIST', 'mkdir', path);
    if (!existsSync(dirname(path))) throw sysError('ENOENT', 'mkdir', path);
    mkdirSync(path);
    this.populate(path);
    this.ops.push(`mkdir ${path}`);
  }

  rmdir(path: string): void {
    this.#check('rmdir', path);
    if (!existsSync(path)) throw sysError('ENOENT', 'rmdir', path);
    if (this.subdirs(path).length > 0 || this.procs(path).length > 0) throw sysError('EBUSY', 'rmdir', path);
    for (const f of readdirSync(path)) unlinkSync(join(path, f));
    rmdirSync(path);
    this.programs.delete(path);
    this.ops.push(`rmdir ${path}`);
  }

  read(path: string): string {
    // A non-root cgroup2 offers what its parent enables for its children, at any moment.
    if (path.endsWith('/cgroup.controllers') && this.hierarchyOf(path) === 'unified' && existsSync(join(dirname(path), 'cgroup.type'))) {
      return this.read(join(dirname(dirname(path)), 'cgroup.subtree_control'));
    }
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch {
      throw sysError('ENOENT', 'open', path);
    }
    this.afterRead?.(path);
    return text;
  }

  write(path: string, value: string): void {
    this.#check('write', path);
    if (!existsSync(path)) throw sysError('ENOENT', 'open', path);
    if (!this.writable(path)) throw sysError('EACCES', 'open', path);
    const dir = dirname(path);
    const file = path.slice(dir.length + 1);
    this.ops.push(`write ${path} ${value}`);
    switch (file) {
      case 'cgroup.procs': {
        // A process is in one cgroup of a hierarchy: it leaves the one it was in.
        const h = this.hierarchyOf(dir);
        const mount = [...this.mounts].find(([, name]) => name === h)![0];
        const walk = (d: string) => {
          if (d !== dir && existsSync(join(d, 'cgroup.procs'))) writeFileSync(join(d, 'cgroup.procs'), this.procs(d).filter((p) => p !== value).join('\n'));
          for (const sub of this.subdirs(d)) walk(join(d, sub));
        };
        walk(mount);
        writeFileSync(path, [...this.procs(dir).filter((p) => p !== value), value].join('\n'));
        return;
      }
      case 'cgroup.subtree_control': {
        const c = value.replace(/^\+/, '');
        if (!this.read(join(dir, 'cgroup.controllers')).split(/\s+/).includes(c)) throw sysError('ENOENT', 'write', path);
        if (existsSync(join(dir, 'cgroup.type')) && this.procs(dir).length > 0) throw sysError('EBUSY', 'write', path);
        writeFileSync(path, [...this.read(path).split(/\s+/).filter(Boolean), c].join(' '));
        return;
      }
      case 'cgroup.kill':
        for (const pid of this.procs(dir)) this.ops.push(`(kernel) SIGKILL ${pid}`);
        this.#clearProcs(dir);
        return;
      case 'cgroup.freeze':
        writeFileSync(join(dir, 'cgroup.events'), `populated 1\nfrozen ${value}\n`);
        return;
      default:
        writeFileSync(path, value);
    }
  }

  exists(path: string): boolean {
    return existsSync(path);
  }

  subdirs(path: string): string[] {
    try {
      return readdirSync(path, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name);
    } catch {
      throw sysError('ENOENT', 'scandir', path);
    }
  }

  /**
   * The device programs attached, by cgroup directory: what the kernel
   * would run for the processes in it (and goes with the directory).
   */
  readonly programs = new Map<string, string[]>();

  /** The addon's attachDeviceFilter: recorded as `bpf <dir> <rules>`; `fail('bpf', ...)` makes it throw as the addon's errors do. */
  attachDeviceFilter(dir: string, rules: readonly { file: string; value: string }[]): void {
    const f = this.failures.find((x) => x.op === 'bpf' && dir.endsWith(x.suffix) && x.times > 0);
    if (f) {
      f.times--;
      throw Object.assign(new Error('load the device program; the verifier\'s log: 0: (61) r2 = *(u32 *)(r1 +0)'), { errno: -errnos[f.code], syscall: 'BPF_PROG_LOAD', path: dir });
    }
    if (!existsSync(dir)) throw Object.assign(new Error('open the container\'s cgroup'), { errno: -errnos.ENOENT, syscall: 'open', path: dir });
    const text = rules.map((r) => `${r.file === 'devices.allow' ? '+' : '-'}${r.value}`).join(',');
    this.programs.set(dir, [...(this.programs.get(dir) ?? []), text]);
    this.ops.push(`bpf ${dir} ${text}`);
  }

  /** The addon's detachDeviceFilter: tsbox's programs (all the fake has) leave `dir`, recorded as `bpf-detach <dir>`; `fail('bpf-detach', ...)` makes it throw. */
  detachDeviceFilter(dir: string): void {
    const f = this.failures.find((x) => x.op === 'bpf-detach' && dir.endsWith(x.suffix) && x.times > 0);
    if (f) {
      f.times--;
      throw Object.assign(new Error('detach tsbox\'s device program 7 from the kept cgroup'), { errno: -errnos[f.code], syscall: 'BPF_PROG_DETACH', path: dir });
    }
    this.programs.delete(dir);
    this.ops.push(`bpf-detach ${dir}`);
  }

  /** Owners of directories by path (lstat's uid); root's where not set. */
  readonly uids = new Map<string, number>();
  /** owners() calls, each with its paths. */
  readonly lstats: string[][] = [];

  owners(paths: readonly string[]): ({ uid: number; isDirectory: boolean } | null)[] {
    this.lstats.push([...paths]);
    return paths.map((p) => {
      try {
        return { uid: this.uids.get(p) ?? 0, isDirectory: lstatSync(p).isDirectory() };
      } catch {
        return null;
      }
    });
  }

  /** Pids that processes outside every cgroup have (a number an exited container process left, taken again). */
  readonly hostPids = new Set<string>();
  /** Called after each read the driver makes (not the fake's own): a test's hook to change the tree between two reads. */
  afterRead: ((path: string) => void) | null = null;
  readonly #pidfds = new Map<number, string>();
  #nextFd = 1000;

  /** A pidfd for a process in a cgroup of the tree or outside them (hostPids); null for a number no process has. */
  pidfdOpen(pid: number): number | null {
    const listed = (d: string): boolean => (existsSync(join(d, 'cgroup.procs')) && this.procs(d).includes(String(pid))) || this.subdirs(d).some((s) => listed(join(d, s)));
    if (!this.hostPids.has(String(pid)) && ![...this.mounts.keys()].some(listed)) return null;
    const fd = this.#nextFd++;
    this.#pidfds.set(fd, String(pid));
    this.mostPidfds = Math.max(this.mostPidfds, this.#pidfds.size);
    return fd;
  }

  /** Recorded as `kill <pid> <signal>`; killing a process takes it out of every cgroup. */
  pidfdSignal(pidfd: number, signal: NodeJS.Signals): boolean {
    const pid = this.#pidfds.get(pidfd);
    if (pid === undefined) throw sysError('EPERM', 'pidfd_send_signal', String(pidfd));
    this.ops.push(`kill ${pid} ${signal}`);
    const walk = (d: string) => {
      if (existsSync(join(d, 'cgroup.procs'))) writeFileSync(join(d, 'cgroup.procs'), this.procs(d).filter((p) => p !== pid).join('\n'));
      for (const s of this.subdirs(d)) walk(join(d, s));
    };
    for (const m of this.mounts.keys()) walk(m);
    return true;
  }

  closePidfd(pidfd: number): void {
    if (!this.#pidfds.delete(pidfd)) throw sysError('EPERM', 'close', String(pidfd));
  }

  /** The most pidfds open at once. */
  mostPidfds = 0;

  /** pidfds not closed yet. */
  openPidfds(): number {
    return this.#pidfds.size;
  }

  procs(dir: string): string[] {
    // Not through read(): the fake's own look-ups are no reads of the driver's (afterRead).
    return readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean);
  }

  #clearProcs(dir: string): void {
    writeFileSync(join(dir, 'cgroup.procs'), '');
    for (const s of this.subdirs(dir)) this.#clearProcs(join(dir, s));
  }

  /** Makes a cgroup directory that exists before the test (the host's own). */
  existing(path: string, procs: string[] = []): void {
    mkdirSync(path, { recursive: true });
    this.populate(path, this.mounts.has(path));
    if (procs.length > 0) writeFileSync(join(path, 'cgroup.procs'), procs.join('\n'));
  }

  /** Every directory under the mounts, relative to the root, for "nothing left behind". */
  tree(): string[] {
    const out: string[] = [];
    const walk = (d: string) => {
      for (const s of this.subdirs(d)) {
        out.push(join(d, s).slice(this.root.length));
        walk(join(d, s));
      }
    };
    for (const m of this.mounts.keys()) walk(m);
    return out.sort();
  }
}

let tmp: string;
let stateDir: string;
const made: Cgroup[] = [];

/** The fixtures are hundreds of small files: on tmpfs where there is one (a disk-backed /tmp can take a millisecond a file). */
const FIXTURE_BASE = (() => {
  try {
    accessSync('/dev/shm', constants.W_OK);
    return '/dev/shm';
  } catch {
    return tmpdir();
  }
})();

beforeEach(() => {
  tmp = mkdtempSync(join(FIXTURE_BASE, 'tsbox-cgroups-unit-'));
  stateDir = join(tmp, 'state');
});

afterEach(() => {
  made.length = 0;
  rmSync(tmp, { recursive: true, force: true });
});

/** A pure v2 host: the caller in /system.slice/app.service, with another process beside it. */
function v2Host(own = '/system.slice/app.service'): { k: FakeKernel; proc: ProcSource; cg: string } {
  const cg = join(tmp, 'sys/fs/cgroup');
  const k = new FakeKernel(tmp);
  k.mounts.set(cg, 'unified');
  k.existing(cg, ['1']);
  writeFileSync(join(cg, 'cgroup.subtree_control'), 'cpuset cpu io memory pids');
  if (own !== '/') {
    k.existing(join(cg, 'system.slice'));
    const parts = own.split('/').filter(Boolean);
    parts.forEach((_, i) => k.existing(join(cg, ...parts.slice(0, i + 1)), i === parts.length - 1 ? [String(process.pid)] : []));
  }
  return { k, cg, proc: { mountinfo: `26 25 0:24 / ${cg} rw shared:4 - cgroup2 cgroup2 rw,nsdelegate\n`, cgroup: `0::${own}\n` } };
}

const V1_HIERARCHIES = ['cpu', 'cpuacct', 'cpuset', 'memory', 'pids', 'blkio', 'freezer'];

/** A hybrid host like the development machine: v1 controllers, memory in a sub-cgroup, unified with hugetlb only. */
function hybridHost(opts: { without?: string[]; with?: string[]; unifiedControllers?: string[] } = {}): { k: FakeKernel; proc: ProcSource; cg: string } {
  const cg = join(tmp, 'sys/fs/cgroup');
  const k = new FakeKernel(tmp);
  const hierarchies = [...V1_HIERARCHIES, ...(opts.with ?? [])].filter((h) => !opts.without?.includes(h));
  let mountinfo = '';
  let cgroup = '';
  hierarchies.forEach((h, i) => {
    k.mounts.set(join(cg, h), h);
    k.existing(join(cg, h), ['1']);
    mountinfo += `${32 + i} 31 0:${29 + i} / ${join(cg, h)} rw,relatime - cgroup cgroup rw,${h}\n`;
    cgroup += `${i + 1}:${h}:${h === 'memory' ? '/session/abc' : '/'}\n`;
  });
  k.existing(join(cg, 'memory/session/abc'), [String(process.pid)]);
  k.mounts.set(join(cg, 'unified'), 'unified');
  k.rootControllers = opts.unifiedControllers ?? ['hugetlb'];
  k.existing(join(cg, 'unified'), ['1']);
  k.existing(join(cg, 'unified/session.scope'), [String(process.pid)]);
  mountinfo += `41 31 0:38 / ${join(cg, 'unified')} rw,relatime - cgroup2 cgroup2 rw\n`;
  cgroup += '0::/session.scope\n';
  return { k, cg, proc: { mountinfo, cgroup } };
}

/** The containers' cgroups left in the fake's tree (the shared `tsbox` parents stay by design). */
const leaves = (host: { k: FakeKernel }) => host.k.tree().filter((d) => /\/tsbox\//.test(d));
/** The `tsbox` directories left, parents included. */
const tsboxLeft = (host: { k: FakeKernel }) => host.k.tree().filter((d) => d.includes('tsbox'));

function create(host: { k: FakeKernel; proc: ProcSource }, limits: CgroupLimitsInput = {}, opts: Partial<CreateOptions> & { id?: string } = {}): Cgroup {
  const c = createCgroup(opts.id ?? 'c1', limits, { stateDir, fs: host.k, proc: host.proc, ...opts });
  made.push(c);
  return c;
}

function failure(fn: () => unknown): TsboxError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(TsboxError);
    return err as TsboxError;
  }
  throw new Error('expected a TsboxError');
}

const cat = (path: string) => readFileSync(path, 'utf8').trim();
const markers = () => (existsSync(stateDir) ? readdirSync(stateDir) : []);

describe('v2: create', () => {
  it('creates <parent>/tsbox/<id> under the parent of the caller\'s cgroup, enabling the controllers on the way', () => {
    const host = v2Host();
    const before = host.k.tree();
    const c = create(host, { memory: '64m', cpuShares: 256, cpus: 1.5, pidsLimit: 64 });
    const leaf = join(host.cg, 'system.slice/tsbox/c1');
    expect(c.mode).toBe('v2');
    expect(c.v2Path).toBe(leaf);
    expect(c.paths).toEqual({ unified: leaf });
    expect(host.k.tree()).toEqual([...before, '/sys/fs/cgroup/system.slice/tsbox', '/sys/fs/cgroup/system.slice/tsbox/c1'].sort());
    const slice = join(host.cg, 'system.slice');
    expect(host.k.ops).toEqual([
      `write ${slice}/cgroup.subtree_control +memory`,
      `write ${slice}/cgroup.subtree_control +cpu`,
      `write ${slice}/cgroup.subtree_control +pids`,
      `mkdir ${slice}/tsbox`,
      `write ${slice}/tsbox/cgroup.subtree_control +memory`,
      `write ${slice}/tsbox/cgroup.subtree_control +cpu`,
      `write ${slice}/tsbox/cgroup.subtree_control +pids`,
      `mkdir ${leaf}`,
      `write ${leaf}/memory.max ${64 * MiB}`,
      `write ${leaf}/memory.swap.max ${64 * MiB}`,
      `write ${leaf}/cpu.weight 10`,
      `write ${leaf}/cpu.max 150000 100000`,
      `write ${leaf}/pids.max 64`,
    ]);
    expect(cat(join(leaf, 'memory.max'))).toBe(String(64 * MiB));
    expect(cat(join(leaf, 'cpu.max'))).toBe('150000 100000');
  });

  it('enables only the controllers it needs: memory, cpu and pids for the stats, cpuset and io only for their limits', () => {
    const host = v2Host();
    create(host, {}, { id: 'a' });
    expect(cat(join(host.cg, 'system.slice/cgroup.subtree_control'))).toBe('memory cpu pids');
    create(host, { cpusetCpus: '0', blkioWeight: 100 }, { id: 'b' });
    expect(cat(join(host.cg, 'system.slice/tsbox/cgroup.subtree_control'))).toBe('memory cpu pids cpuset io');
    expect(cat(join(host.cg, 'system.slice/tsbox/b/cpuset.cpus'))).toBe('0');
    expect(cat(join(host.cg, 'system.slice/tsbox/b/io.weight'))).toBe('default 910');
  });

  it('puts tsbox right under the root when the caller is in the root cgroup (the root may hold processes)', () => {
    const host = v2Host('/');
    const c = create(host);
    expect(c.v2Path).toBe(join(host.cg, 'tsbox/c1'));
    expect(cat(join(host.cg, 'tsbox/c1/pids.max'))).toBe(String(DEFAULT_PIDS_LIMIT));
  });

  it('traces each step for --trace', () => {
    const host = v2Host();
    const lines: string[] = [];
    const c = create(host, { memory: '64m' }, { trace: (l) => lines.push(l) });
    expect(lines[0]).toBe('cgroup: v2, memory v2, cpu v2, pids v2');
    expect(lines).toContain(`cgroup: mkdir ${c.v2Path}`);
    expect(lines).toContain(`cgroup: ${c.v2Path}/memory.max = ${64 * MiB}`);
  });

  it('uses a configured parent', () => {
    const host = v2Host();
    host.k.existing(join(host.cg, 'tsbox.slice'));
    const c = create(host, {}, { parent: '/tsbox.slice' });
    expect(c.v2Path).toBe(join(host.cg, 'tsbox.slice/tsbox/c1'));
  });

  it('writes an orphan marker naming the cgroups and the owner, and removes it on destroy', () => {
    const host = v2Host();
    const c = create(host);
    const m = JSON.parse(readFileSync(join(stateDir, 'c1.json'), 'utf8'));
    expect(m).toMatchObject({ id: 'c1', ownerPid: process.pid, dirs: { unified: c.v2Path }, parents: [join(host.cg, 'system.slice/tsbox')] });
    expect(m.ownerStart).toMatch(/^\d+$/);
    c.setOwner(1);
    expect(JSON.parse(readFileSync(join(stateDir, 'c1.json'), 'utf8')).ownerPid).toBe(1);
    c.destroy();
    expect(markers()).toEqual([]);
  });

  it('reports the limits as applied', () => {
    const host = v2Host();
    const c = create(host, { memory: '1g', blkioWeight: 500 });
    const leaf = c.v2Path!;
    expect(c.applied()).toEqual({
      mode: 'v2',
      limits: { memory: 1024 * MiB, blkioWeight: 500, pidsLimit: DEFAULT_PIDS_LIMIT },
      writes: [
        { path: join(leaf, 'memory.max'), value: String(1024 * MiB), limit: 'memory' },
        { path: join(leaf, 'memory.swap.max'), value: String(1024 * MiB), limit: 'memorySwap' },
        { path: join(leaf, 'pids.max'), value: String(DEFAULT_PIDS_LIMIT), limit: 'pidsLimit' },
        { path: join(leaf, 'io.weight'), value: 'default 4950', limit: 'blkioWeight' },
      ],
    });
  });
});

describe('v2: failures leave nothing behind', () => {
  /** Runs `fn`, expects a TsboxError, and checks the tree and the state dir are as before. */
  function leavesNothing(host: { k: FakeKernel }, fn: () => unknown): TsboxError {
    const before = host.k.tree();
    const markersBefore = markers();
    const e = failure(fn);
    expect(host.k.tree()).toEqual(before);
    expect(markers()).toEqual(markersBefore);
    return e;
  }

  it('a limit the kernel rejects: errno, path, hint; the cgroup and tsbox dirs removed', () => {
    const host = v2Host();
    host.k.fail('write', '/cpu.max', 'EINVAL');
    const e = leavesNothing(host, () => create(host, { memory: '64m', cpus: 2 }));
    expect(e.step).toBe('cgroup');
    expect(e.errno).toBe(errnos.EINVAL);
    expect(e.path).toBe(join(host.cg, 'system.slice/tsbox/c1/cpu.max'));
    expect(e.message).toContain('limits.cpus');
    expect(e.hint).toMatch(/rejected the value "200000 100000"/);
    expect(host.k.ops.filter((o) => o.startsWith('rmdir'))).toEqual([`rmdir ${join(host.cg, 'system.slice/tsbox/c1')}`, `rmdir ${join(host.cg, 'system.slice/tsbox')}`]);
  });

  it('keeps a tsbox parent that other containers use', () => {
    const host = v2Host();
    create(host, {}, { id: 'other' });
    host.k.fail('write', '/pids.max', 'EINVAL');
    leavesNothing(host, () => create(host, { pidsLimit: 10 }, { id: 'c2' }));
    expect(existsSync(join(host.cg, 'system.slice/tsbox/other'))).toBe(true);
  });

  it('an explicit swap limit without swap accounting is an error; Docker\'s implicit swap is skipped', () => {
    const host = v2Host();
    host.k.missing.add('memory.swap.max');
    const e = leavesNothing(host, () => create(host, { memory: '64m', memorySwap: '128m' }));
    expect(e.errno).toBe(errnos.ENOENT);
    expect(e.message).toMatch(/limits.memorySwap: the kernel has no memory.swap.max/);
    expect(e.hint).toMatch(/does not account swap/);
    const c = create(host, { memory: '64m' });
    expect(c.applied().writes.map((w) => w.limit)).toEqual(['memory', 'pidsLimit']);
  });

  it('a controller the parent does not offer: refused before anything is created', () => {
    const host = v2Host();
    writeFileSync(join(host.cg, 'cgroup.subtree_control'), 'cpu pids');
    const e = leavesNothing(host, () => create(host, { memory: '64m' }));
    expect(e.errno).toBe(errnos.ENOENT);
    expect(e.message).toMatch(/memory controller is not available in .*system.slice .*cgroup.controllers: cpu pids.*limits.memory needs it/);
    expect(e.hint).toMatch(/subtree_control|Delegate=memory/);
    expect(host.k.ops).toEqual([]);
    // Without a memory limit, memory is only wanted for stats: no error, the stats read null.
    const c = create(host);
    expect(c.stats().memory).toEqual({ current: null, peak: null, oomKills: null });
  });

  it('the default pids limit needs the pids controller, and says how to opt out', () => {
    const host = v2Host();
    writeFileSync(join(host.cg, 'cgroup.subtree_control'), 'cpu memory');
    const e = leavesNothing(host, () => create(host));
    expect(e.message).toMatch(new RegExp(`limits.pidsLimit \\(default ${DEFAULT_PIDS_LIMIT}\\) needs it`));
    expect(create(host, { pidsLimit: -1 }).v2Path).toBe(join(host.cg, 'system.slice/tsbox/c1'));
  });

  it('a parent with processes in it ("no internal processes"): refused with a hint', () => {
    const host = v2Host();
    writeFileSync(join(host.cg, 'system.slice/cgroup.procs'), '4242\n');
    const e = leavesNothing(host, () => create(host));
    expect(e.errno).toBe(errnos.EBUSY);
    expect(e.message).toMatch(/processes 4242 are in this cgroup/);
    expect(e.hint).toMatch(/no internal processes/);
  });

  it('the kernel\'s own EBUSY on subtree_control gets the same hint', () => {
    const host = v2Host();
    host.k.fail('write', 'system.slice/cgroup.subtree_control', 'EBUSY');
    const e = leavesNothing(host, () => create(host));
    expect(e.errno).toBe(errnos.EBUSY);
    expect(e.hint).toMatch(/no internal processes/);
  });

  it('a configured parent that does not exist', () => {
    const host = v2Host();
    const e = leavesNothing(host, () => create(host, {}, { parent: '/nope.slice' }));
    expect(e.errno).toBe(errnos.ENOENT);
    expect(e.path).toBe(join(host.cg, 'nope.slice'));
    expect(e.hint).toMatch(/create it first/);
  });

  it('mkdir refused (an unprivileged caller without delegation): EACCES with a hint', () => {
    const host = v2Host();
    host.k.fail('mkdir', '/tsbox/c1', 'EACCES');
    const e = leavesNothing(host, () => create(host));
    expect(e.errno).toBe(errnos.EACCES);
    expect(e.hint).toMatch(process.getuid?.() === 0 ? /refused a write as root/ : /delegated/);
  });

  it('an id in use: refused before anything is touched, and the other container\'s cgroup and marker are left alone', () => {
    const host = v2Host();
    create(host);
    const before = host.k.tree();
    const marker = readFileSync(join(stateDir, 'c1.json'), 'utf8');
    host.k.ops.length = 0;
    const e = failure(() => create(host));
    expect(e.errno).toBe(errnos.EEXIST);
    expect(e.message).toMatch(/container id c1 is in use/);
    expect(host.k.ops).toEqual([]);
    expect(host.k.tree()).toEqual(before);
    expect(readFileSync(join(stateDir, 'c1.json'), 'utf8')).toBe(marker);
  });

  it('a leaf that exists without a marker (not ours) is refused and left alone', () => {
    const host = v2Host();
    create(host, {}, { id: 'other' });
    host.k.mkdir(join(host.cg, 'system.slice/tsbox/c1'));
    const before = host.k.tree();
    const e = failure(() => create(host));
    expect(e.errno).toBe(errnos.EEXIST);
    expect(e.message).toMatch(/exists already/);
    expect(host.k.tree()).toEqual(before);
    expect(markers()).toEqual(['other.json']);
  });

  it('bad limits and bad ids are refused before anything is touched', () => {
    const host = v2Host();
    expect(failure(() => create(host, { memory: 'lots' })).step).toBe('config');
    for (const id of ['', '../x', 'a/b', '.hidden', 'x'.repeat(129)]) expect(failure(() => create(host, {}, { id })).errno).toBe(errnos.EINVAL);
    expect(host.k.ops).toEqual([]);
    expect(markers()).toEqual([]);
  });

  it('a device rate limit on something that is not a block device', () => {
    const host = v2Host();
    const e = leavesNothing(host, () => create(host, { deviceReadBps: [{ path: '/dev/null', rate: '1m' }] }));
    expect(e.errno).toBe(errnos.ENODEV);
    expect(e.path).toBe('/dev/null');
  });

  it('recreates the tsbox parent when another container\'s teardown removed it meanwhile', () => {
    const host = v2Host();
    host.k.fail('mkdir', '/tsbox/c1', 'ENOENT', 1);
    const c = create(host);
    expect(existsSync(c.v2Path!)).toBe(true);
  });
});

describe('v2: an ordinary user, under the cgroup delegated to it (issue 20)', () => {
  /**
   * A pure v2 host where uid 1000's shell and tsbox sit in the cgroup
   * delegated to it, /deleg/user (owned by the user: the directory,
   * cgroup.procs, cgroup.subtree_control, cgroup.threads), whose parent
   * /deleg is root's and enables `controllers` for it.
   */
  function delegatedHost(controllers = 'cpu memory pids'): { k: FakeKernel; proc: ProcSource; cg: string; d: string } {
    const host = v2Host('/deleg/user');
    const d = join(host.cg, 'deleg/user');
    writeFileSync(join(d, 'cgroup.procs'), ['4242', String(process.pid)].join('\n'));
    writeFileSync(join(host.cg, 'deleg/cgroup.subtree_control'), controllers);
    host.k.owned = new Set([d]);
    return { ...host, d };
  }

  it('the caller\'s own delegated cgroup: its processes move to a leaf, then the controllers are enabled and the container goes beside it', () => {
    const host = delegatedHost();
    const c = create(host, { memory: '64m' }, { uid: 1000 });
    const { d } = host;
    expect(c.v2Path).toBe(join(d, 'tsbox/c1'));
    expect(host.k.procs(d)).toEqual([]);
    expect(host.k.procs(join(d, 'tsbox-leaf')).sort()).toEqual(['4242', String(process.pid)].sort());
    expect(host.k.ops.slice(0, 6)).toEqual([
      `mkdir ${d}/tsbox-leaf`,
      `write ${d}/tsbox-leaf/cgroup.procs 4242`,
      `write ${d}/tsbox-leaf/cgroup.procs ${process.pid}`,
      `write ${d}/cgroup.subtree_control +memory`,
      `write ${d}/cgroup.subtree_control +cpu`,
      `write ${d}/cgroup.subtree_control +pids`,
    ]);
    // The default pids limit applies, as for root.
    expect(cat(join(d, 'tsbox/c1/pids.max'))).not.toBe('max');
    expect(cat(join(d, 'tsbox/c1/memory.max'))).toBe(String(64 * MiB));
    c.destroy();
    expect(leaves(host)).toEqual([]);
  });

  it('once moved, the next container goes under the same cgroup (the parent of the leaf) and nothing moves again', () => {
    const host = delegatedHost();
    create(host, {}, { uid: 1000, id: 'c1' }).destroy();
    const moved = { ...host, proc: { ...host.proc, cgroup: '0::/deleg/user/tsbox-leaf\n' } };
    host.k.ops.length = 0;
    const c = create(moved, {}, { uid: 1000, id: 'c2' });
    expect(c.v2Path).toBe(join(host.d, 'tsbox/c2'));
    expect(host.k.ops.filter((o) => o.includes('cgroup.procs'))).toEqual([]);
  });

  it('a systemd user manager\'s slice (the caller in one of its scopes): the parent, with nothing moved', () => {
    const svc = '/user.slice/user-1000.slice/user@1000.service';
    const host = v2Host(`${svc}/app.slice/term.scope`);
    // systemd enables memory and pids down to the user's manager and its slices.
    for (const d of ['user.slice', 'user.slice/user-1000.slice', `${svc}`]) writeFileSync(join(host.cg, d, 'cgroup.subtree_control'), 'memory pids');
    host.k.owned = new Set([`${host.cg}${svc}`, `${host.cg}${svc}/app.slice`, `${host.cg}${svc}/app.slice/term.scope`]);
    const c = create(host, {}, { uid: 1000 });
    expect(c.v2Path).toBe(join(host.cg, svc, 'app.slice/tsbox/c1'));
    expect(host.k.ops.some((o) => o.includes('tsbox-leaf'))).toBe(false);
  });

  it('nothing delegated: EACCES naming each cgroup tried and why, the systemd-run line as the fix, and nothing made', () => {
    const host = v2Host('/user.slice/user-1000.slice/session-3.scope');
    host.k.owned = new Set();
    const before = host.k.tree();
    const e = failure(() => create(host, {}, { uid: 1000 }));
    expect(e.errno).toBe(errnos.EACCES);
    expect(e.message).toBe(
      `cgroup(${host.cg}): EACCES — ` +
        'no cgroup here is delegated to uid 1000: /user.slice/user-1000.slice (the parent of this process\'s cgroup): its directory is not writable (no child cgroups); ' +
        "/user.slice/user-1000.slice/session-3.scope (this process's own cgroup): its directory is not writable (no child cgroups); /user.slice (an ancestor): its directory is not writable (no child cgroups)",
    );
    expect(e.hint).toContain('systemd-run --user --scope -p Delegate=yes tsbox run');
    expect(host.k.tree()).toEqual(before);
    expect(markers()).toEqual([]);
  });

  it('a limit whose controller is not delegated: an error naming it and how to delegate it, before anything moves', () => {
    const host = delegatedHost('memory pids');
    const e = failure(() => create(host, { cpus: 0.5 }, { uid: 1000 }));
    expect(e.message).toMatch(/ — the cpu controller is not available in .*\/deleg\/user \(its cgroup.controllers: memory pids\), and limits.cpus needs it$/);
    expect(e.hint).toBe('have it delegated to your user (systemd: `systemctl edit user@.service` with [Service] Delegate=cpu cpuset io memory pids, then log in again), or leave limits.cpus out');
    expect(host.k.procs(host.d)).toHaveLength(2);
  });

  it('an explicit cgroup parent is taken as given', () => {
    const host = delegatedHost();
    host.k.existing(join(host.cg, 'mine'));
    host.k.owned!.add(join(host.cg, 'mine'));
    const c = create(host, {}, { uid: 1000, parent: '/mine' });
    expect(c.v2Path).toBe(join(host.cg, 'mine/tsbox/c1'));
    expect(host.k.procs(host.d)).toHaveLength(2);
  });
});

describe('root under a cgroup a user owns: the containers go where only root may reach them', () => {
  const svc = '/user.slice/user-1000.slice/user@1000.service';
  /**
   * `sudo tsbox run` from a desktop terminal on pure v2: root in a scope of
   * uid 1000's systemd user manager, whose subtree systemd delegated to the
   * user (chowned to 1000). The default parent, app.slice, is the user's.
   */
  function userSessionHost(): { k: FakeKernel; proc: ProcSource; cg: string } {
    const host = v2Host(`${svc}/app.slice/term.scope`);
    // systemd enables memory and pids down to the user's manager and its slices.
    for (const d of ['user.slice', 'user.slice/user-1000.slice', svc, `${svc}/app.slice`]) writeFileSync(join(host.cg, d, 'cgroup.subtree_control'), 'memory pids');
    for (const d of [svc, `${svc}/app.slice`, `${svc}/app.slice/term.scope`]) host.k.uids.set(join(host.cg, d), 1000);
    return host;
  }

  it('v2: the default parent is the user\'s: under the root of the hierarchy instead, as runc and podman put theirs', () => {
    const host = userSessionHost();
    const trace: string[] = [];
    const c = create(host, { memory: '64m' }, { uid: 0, trace: (l) => trace.push(l) });
    expect(c.v2Path).toBe(join(host.cg, 'tsbox/c1'));
    expect(existsSync(join(host.cg, svc, 'app.slice/tsbox'))).toBe(false);
    expect(trace).toContain(`cgroup: ${join(host.cg, svc)} is owned by uid 1000, not root's: the containers go under ${host.cg} instead`);
    c.destroy();
    expect(leaves(host)).toEqual([]);
  });

  it('v2: a tsbox directory the user made in advance in their cgroup is not used', () => {
    const host = userSessionHost();
    const theirs = join(host.cg, svc, 'app.slice/tsbox');
    host.k.existing(theirs);
    host.k.uids.set(theirs, 1000);
    const c = create(host, {}, { uid: 0 });
    expect(c.v2Path).toBe(join(host.cg, 'tsbox/c1'));
    expect(host.k.subdirs(theirs)).toEqual([]);
  });

  it('a tsbox directory that is not root\'s under a root\'s parent: refused by name and owner, nothing made', () => {
    const host = v2Host();
    const tsbox = join(host.cg, 'system.slice/tsbox');
    host.k.existing(tsbox);
    host.k.uids.set(tsbox, 1000);
    const before = host.k.tree();
    const e = failure(() => create(host, {}, { uid: 0 }));
    expect(e.errno).toBe(errnos.EPERM);
    expect(e.message).toBe(`cgroup(${tsbox}): EPERM — tsbox's shared cgroup is owned by uid 1000, not root: that user could move, freeze or kill the containers' processes`);
    expect(e.hint).toBe(`remove it if no container of root's is in it (rmdir ${tsbox}), or pass a cgroup parent that is root's (--cgroup-parent)`);
    expect(host.k.tree()).toEqual(before);
    expect(markers()).toEqual([]);
  });

  it('the root of the hierarchy is not root\'s either (a cgroup namespace of a user\'s): refused, naming its owner', () => {
    const host = userSessionHost();
    host.k.uids.set(host.cg, 65534);
    const e = failure(() => create(host, {}, { uid: 0 }));
    expect(e.errno).toBe(errnos.EPERM);
    expect(e.path).toBe(host.cg);
    expect(e.message).toBe(`cgroup(${host.cg}): EPERM — the root of the cgroup hierarchy is owned by uid 65534, not root's: there is no cgroup of root's to put root's containers in`);
    expect(e.hint).toContain('--cgroup-parent');
    expect(markers()).toEqual([]);
  });

  it('hybrid: each hierarchy on its own; only the one whose default parent is the user\'s moves to its root', () => {
    const host = hybridHost();
    host.k.uids.set(join(host.cg, 'memory/session'), 1000);
    const c = create(host, { memory: '64m' }, { uid: 0 });
    expect(c.paths.memory).toBe(join(host.cg, 'memory/tsbox/c1'));
    expect(c.paths.pids).toBe(join(host.cg, 'pids/tsbox/c1'));
    c.destroy();
    expect(leaves(host)).toEqual([]);
  });

  it('an explicit cgroup parent is the administrator\'s choice: taken as given', () => {
    const host = userSessionHost();
    const c = create(host, {}, { uid: 0, parent: `${svc}/app.slice` });
    expect(c.v2Path).toBe(join(host.cg, svc, 'app.slice/tsbox/c1'));
  });

  it('gc as root sweeps where create puts the containers, not the user\'s tsbox directory', () => {
    const host = userSessionHost();
    const theirs = join(host.cg, svc, 'app.slice/tsbox');
    host.k.existing(theirs);
    host.k.uids.set(theirs, 1000);
    host.k.mkdir(join(theirs, 'stray'));
    host.k.uids.set(join(theirs, 'stray'), 1000);
    host.k.mkdir(join(host.cg, 'tsbox'));
    host.k.mkdir(join(host.cg, 'tsbox/orphan'));
    expect(gc({ stateDir, fs: host.k, proc: host.proc, uid: 0 })).toEqual(['orphan']);
    expect(existsSync(join(theirs, 'stray'))).toBe(true);
  });

  it('directories found root\'s are not looked at again by the same process', () => {
    const host = v2Host();
    create(host, {}, { uid: 0, id: 'a' });
    create(host, {}, { uid: 0, id: 'b' });
    host.k.lstats.length = 0;
    create(host, {}, { uid: 0, id: 'c' });
    expect(host.k.lstats).toEqual([]);
  });
});

describe('v2: device rules as an eBPF program (no device controller)', () => {
  const devices = [
    { file: 'devices.deny', value: 'a' },
    { file: 'devices.allow', value: 'c 10:229 rwm' },
    { file: 'devices.allow', value: 'c 1:3 rwm' },
  ] as const;

  it('attaches the program once, to the container\'s leaf, right after it is made and before any limit or process', () => {
    const host = v2Host();
    const c = create(host, { memory: '64m', pidsLimit: 10 }, { devices, trace: () => {} });
    const leaf = c.v2Path!;
    const bpf = host.k.ops.filter((o) => o.startsWith('bpf '));
    expect(bpf).toEqual([`bpf ${leaf} -a,+c 10:229 rwm,+c 1:3 rwm`]);
    const at = host.k.ops.indexOf(bpf[0]!);
    expect(host.k.ops.indexOf(`mkdir ${leaf}`)).toBe(at - 1);
    // Every write to the leaf (limits; cgroup.procs comes later still) follows it.
    const leafWrites = host.k.ops.map((o, i) => [o, i] as const).filter(([o]) => o.startsWith(`write ${leaf}/`));
    expect(leafWrites.length).toBeGreaterThan(0);
    for (const [, i] of leafWrites) expect(i).toBeGreaterThan(at);
    c.place(4242);
    expect(host.k.ops.indexOf(`write ${leaf}/cgroup.procs 4242`)).toBeGreaterThan(at);
    // No v1 device files anywhere, and the program goes with the cgroup.
    expect(host.k.ops.filter((o) => o.includes('/devices.'))).toEqual([]);
    expect([...host.k.programs.keys()]).toEqual([leaf]);
    c.destroy();
    expect(host.k.programs.size).toBe(0);
    expect(leaves(host)).toEqual([]);
  });

  it('on an exact path, to the leaf only, not to the ancestors it makes', () => {
    const host = v2Host();
    const c = create(host, {}, { devices, path: '/pods/p1/c1' });
    expect([...host.k.programs.keys()]).toEqual([join(host.cg, 'pods/p1/c1')]);
    expect(c.v2Path).toBe(join(host.cg, 'pods/p1/c1'));
  });

  it('a program the kernel refuses: errno, the call, the verifier\'s log and a hint; the cgroup and its marker removed', () => {
    const host = v2Host();
    const before = host.k.tree();
    host.k.fail('bpf', '/tsbox/c1', 'EPERM');
    const e = failure(() => create(host, {}, { devices }));
    expect(e.step).toBe('cgroup');
    expect(e.errno).toBe(1);
    expect(e.path).toBe(join(host.cg, 'system.slice/tsbox/c1'));
    expect(e.message).toContain('carry out the device rules with an eBPF program (BPF_PROG_LOAD): load the device program; the verifier\'s log: 0: (61)');
    expect(e.hint).toContain('CAP_SYS_ADMIN (or CAP_BPF) in the initial user namespace');
    expect(host.k.tree()).toEqual(before);
    expect(host.k.programs.size).toBe(0);
    expect(existsSync(join(stateDir, 'c1.json'))).toBe(false);
    expect(host.k.ops.filter((o) => o.startsWith('write ') && o.includes('/tsbox/c1/'))).toEqual([]);
  });

  it('a joined cgroupsPath is kept when the container goes, and the program is detached from it; a made one needs no detach', () => {
    const host = v2Host();
    const joined = join(host.cg, 'kept');
    host.k.existing(joined);
    const c = create(host, {}, { devices, path: '/kept' });
    expect(c.v2Path).toBe(joined);
    expect([...host.k.programs.keys()]).toEqual([joined]);
    // gc works from the marker: it knows too.
    expect(JSON.parse(readFileSync(join(stateDir, 'c1.json'), 'utf8'))).toMatchObject({ kept: [joined], deviceFilter: joined });
    c.destroy();
    expect(existsSync(joined)).toBe(true);
    expect(host.k.programs.size).toBe(0);
    expect(host.k.ops.filter((o) => o.startsWith('bpf-detach '))).toEqual([`bpf-detach ${joined}`]);

    const made = create(host, {}, { devices, path: '/pods/made', id: 'c2' });
    made.destroy();
    expect(host.k.programs.size).toBe(0);
    expect(host.k.ops.filter((o) => o.startsWith('bpf-detach '))).toEqual([`bpf-detach ${joined}`]);
  });

  it('a failed limit after the program in a joined cgroupsPath: the program is detached from the cgroup, which stays', () => {
    const host = v2Host();
    const joined = join(host.cg, 'kept');
    host.k.existing(joined);
    host.k.fail('write', '/kept/memory.max', 'EINVAL');
    failure(() => create(host, { memory: '64m' }, { devices, path: '/kept' }));
    expect(existsSync(joined)).toBe(true);
    expect(host.k.programs.size).toBe(0);
  });

  it('a program that cannot be detached from a joined cgroup: the teardown says so, with the call, errno and a hint', () => {
    const host = v2Host();
    const joined = join(host.cg, 'kept');
    host.k.existing(joined);
    const c = create(host, {}, { devices, path: '/kept' });
    host.k.fail('bpf-detach', '/kept', 'EPERM');
    const e = failure(() => c.destroy());
    expect(e.step).toBe('cgroup');
    expect(e.errno).toBe(1);
    expect(e.path).toBe(joined);
    expect(e.message).toContain('detach tsbox\'s eBPF device program from the joined cgroup, which stays (BPF_PROG_DETACH): detach tsbox\'s device program 7 from the kept cgroup');
    expect(e.hint).toContain('bpftool cgroup detach');
  });

  it('a failed limit after the program removes the cgroup, and the program with it', () => {
    const host = v2Host();
    host.k.fail('write', '/tsbox/c1/memory.max', 'EINVAL');
    failure(() => create(host, { memory: '64m' }, { devices }));
    expect(host.k.ops.some((o) => o.startsWith('bpf '))).toBe(true);
    expect(host.k.programs.size).toBe(0);
    expect(leaves(host)).toEqual([]);
  });
});

describe('v2: place, stats, kill, destroy', () => {
  it('places a pid through cgroup.procs', () => {
    const host = v2Host();
    const c = create(host);
    c.place(4242);
    expect(host.k.procs(c.v2Path!)).toEqual(['4242']);
  });

  it('place names the process and the path when the kernel refuses', () => {
    const host = v2Host();
    const c = create(host);
    host.k.fail('write', '/c1/cgroup.procs', 'ESRCH');
    const e = failure(() => c.place(4242));
    expect(e.errno).toBe(errnos.ESRCH);
    expect(e.path).toBe(join(c.v2Path!, 'cgroup.procs'));
    expect(e.hint).toMatch(/exited before/);
  });

  it('reads memory.peak, oom_kill, cpu.stat and pids', () => {
    const host = v2Host();
    const c = create(host, { cpus: 1 });
    const w = (f: string, v: string) => writeFileSync(join(c.v2Path!, f), v);
    w('memory.current', '1000\n');
    w('memory.peak', '52428800\n');
    w('memory.events', 'low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n');
    w('cpu.stat', 'usage_usec 2500\nuser_usec 2000\nsystem_usec 500\nnr_periods 10\nnr_throttled 4\nthrottled_usec 300\n');
    w('pids.current', '3\n');
    w('pids.events', 'max 7\n');
    expect(c.stats()).toEqual({
      memory: { current: 1000, peak: 52428800, oomKills: 1 },
      cpu: { usageUsec: 2500, userUsec: 2000, systemUsec: 500, periods: 10, throttledPeriods: 4, throttledUsec: 300 },
      pids: { current: 3, peak: null, limitHits: 7 },
    });
    w('pids.peak', '9\n');
    expect(c.stats().pids.peak).toBe(9);
    // A result's four figures alone, the same as stats() reads them.
    expect(c.usage()).toEqual({ peakMemoryBytes: 52428800, oomKills: 1, peakPids: 9, cpuThrottledPeriods: 4 });
    // The files the monitor reads for it, and the same figures from their texts.
    expect(c.usageFiles).toEqual(['memory.peak', 'memory.events', 'pids.peak', 'cpu.stat'].map((f) => join(c.v2Path!, f)));
    const texts = c.usageFiles.map((f) => readFileSync(f, 'utf8'));
    w('memory.peak', '1\n');
    expect(c.usageFrom(texts)).toEqual({ peakMemoryBytes: 52428800, oomKills: 1, peakPids: 9, cpuThrottledPeriods: 4 });
    // A file the monitor could not read is unknown, not 0.
    expect(c.usageFrom([null, texts[1]!, null, texts[3]!])).toEqual({ peakMemoryBytes: null, oomKills: 1, peakPids: null, cpuThrottledPeriods: 4 });
  });

  it('kills with cgroup.kill, then removes the cgroups leaves first; the tsbox parent stays until gc', () => {
    const host = v2Host();
    const c = create(host);
    c.place(100);
    // The container made a cgroup of its own below its cgroup, with a process in it.
    host.k.mkdir(join(c.v2Path!, 'inner'));
    writeFileSync(join(c.v2Path!, 'inner/cgroup.procs'), '101');
    host.k.ops.length = 0;
    c.destroy();
    expect(host.k.ops).toEqual([
      `write ${c.v2Path}/cgroup.kill 1`,
      '(kernel) SIGKILL 100',
      `rmdir ${c.v2Path}/inner`,
      `rmdir ${c.v2Path}`,
    ]);
    // The shared parent stays for the next container; gc removes it once empty.
    expect(existsSync(join(host.cg, 'system.slice/tsbox'))).toBe(true);
    host.k.ops.length = 0;
    c.destroy();
    expect(host.k.ops).toEqual([]);
    gc({ stateDir, fs: host.k, proc: host.proc });
    expect(existsSync(join(host.cg, 'system.slice/tsbox'))).toBe(false);
  });

  it('retries rmdir while the killed processes finish exiting (EBUSY)', () => {
    const host = v2Host();
    const c = create(host);
    host.k.fail('rmdir', '/tsbox/c1', 'EBUSY', 3);
    c.destroy();
    expect(existsSync(c.v2Path!)).toBe(false);
  });

  it('without cgroup.kill (before 5.14): freezes, kills each process, thaws', () => {
    const host = v2Host();
    host.k.missing.add('cgroup.kill');
    const c = create(host);
    writeFileSync(join(c.v2Path!, 'cgroup.procs'), '100\n101\n');
    host.k.ops.length = 0;
    c.kill();
    expect(host.k.ops).toEqual([`write ${c.v2Path}/cgroup.freeze 1`, 'kill 100 SIGKILL', 'kill 101 SIGKILL', `write ${c.v2Path}/cgroup.freeze 0`]);
  });
});

describe('the rest of linux.resources: v1-only memory files, huge pages, net_cls/net_prio, unified files, per-device weights', () => {
  it('v1: swappiness, the OOM killer off, and the kernel memory limits go to the container\'s memory cgroup', () => {
    const host = hybridHost();
    const c = create(host, { memory: '64m', memorySwappiness: 10, oomKillDisable: true, kernelMemoryTCP: '16m' });
    const m = c.paths.memory!;
    expect(cat(join(m, 'memory.swappiness'))).toBe('10');
    expect(cat(join(m, 'memory.oom_control'))).toBe('1');
    expect(cat(join(m, 'memory.kmem.tcp.limit_in_bytes'))).toBe(String(16 * MiB));
    expect(c.applied().writes.map((w) => w.limit)).toEqual(expect.arrayContaining(['memorySwappiness', 'oomKillDisable', 'kernelMemoryTCP']));
  });

  it('the kernel memory limit where the kernel enforces it (before 6.1), and an error naming the kernel where it takes the write and ignores it', () => {
    expect([kmemLimitEnforced('5.15.0-91-generic'), kmemLimitEnforced('6.0.19'), kmemLimitEnforced('6.1.0'), kmemLimitEnforced('6.18.44-fc')]).toEqual([true, true, false, false]);
    const host = hybridHost();
    if (kmemLimitEnforced()) {
      const c = create(host, { kernelMemory: '48m' });
      expect(cat(join(c.paths.memory!, 'memory.kmem.limit_in_bytes'))).toBe(String(48 * MiB));
    } else {
      const before = host.k.tree();
      const e = failure(() => create(host, { kernelMemory: '48m' }));
      expect(e.message).toContain('takes memory.kmem.limit_in_bytes and ignores it');
      expect(host.k.tree()).toEqual(before);
    }
  });

  it('v2 has none of them: each is an error naming the limit and why, before anything is made', () => {
    for (const [limits, why] of [
      [{ memorySwappiness: 10 }, 'cgroup v2 has no memory.swappiness'],
      [{ oomKillDisable: true }, 'the OOM killer cannot be turned off for a cgroup'],
      [{ kernelMemory: '48m' }, 'kernel memory is counted in memory.max'],
    ] as const) {
      const host = v2Host();
      const before = host.k.tree();
      const e = failure(() => create(host, limits));
      expect(e.message).toContain(why);
      expect(e.message).toContain(`limits.${Object.keys(limits)[0]}`);
      expect(host.k.tree()).toEqual(before);
      expect(host.k.ops.filter((o) => o.startsWith('mkdir') || o.startsWith('write'))).toEqual([]);
    }
  });

  it('huge pages: the hybrid host\'s unified hierarchy has hugetlb, so the limit goes there, its controller enabled; an unknown page size leaves nothing', () => {
    const host = hybridHost();
    const c = create(host, { hugepageLimits: [{ pageSize: '2MB', limit: 2 * 1024 ** 3 }] });
    const u = c.paths.unified!;
    expect(cat(join(host.cg, 'unified/tsbox/cgroup.subtree_control'))).toBe('hugetlb');
    expect(cat(join(u, 'hugetlb.2MB.max'))).toBe(String(2 * 1024 ** 3));
    expect(cat(join(u, 'hugetlb.2MB.rsvd.max'))).toBe(String(2 * 1024 ** 3));
    const host2 = hybridHost();
    const e = failure(() => create(host2, { hugepageLimits: [{ pageSize: '3MB', limit: 1 }] }, { id: 'c2' }));
    expect(e.message).toContain('hugetlb.3MB.max');
    expect(e.hint).toContain('the kernel has no 3MB huge pages to limit');
    expect(leaves(host2).filter((d) => d.endsWith('/c2'))).toEqual([]);
  });

  it('huge pages on v1 go to hugetlb.<size>.limit_in_bytes', () => {
    const host = hybridHost({ with: ['hugetlb'] });
    const c = create(host, { hugepageLimits: [{ pageSize: '1GB', limit: 1024 ** 3 }] });
    expect(cat(join(c.paths.hugetlb!, 'hugetlb.1GB.limit_in_bytes'))).toBe(String(1024 ** 3));
  });

  it('net_cls and net_prio: written on v1 where mounted; an error naming the mount where not, and on v2 (which has neither)', () => {
    const host = hybridHost({ with: ['net_cls', 'net_prio'] });
    const c = create(host, { networkClassId: 0x100001, networkPriorities: [{ name: 'lo', priority: 10 }, { name: 'eth0', priority: 30 }] });
    expect(cat(join(c.paths.net_cls!, 'net_cls.classid'))).toBe(String(0x100001));
    expect(host.k.ops.filter((o) => o.includes('net_prio.ifpriomap'))).toEqual([`write ${c.paths.net_prio!}/net_prio.ifpriomap lo 10`, `write ${c.paths.net_prio!}/net_prio.ifpriomap eth0 30`]);
    const without = hybridHost();
    const e = failure(() => create(without, { networkClassId: 1 }, { id: 'c2' }));
    expect(e.message).toContain('the net_cls controller is not mounted, and limits.networkClassId needs it');
    expect(e.hint).toContain('mount -t cgroup -o net_cls');
    expect(leaves(without).filter((d) => d.endsWith('/c2'))).toEqual([]);
    const v2 = v2Host();
    const e2 = failure(() => create(v2, { networkPriorities: [{ name: 'lo', priority: 1 }] }, { id: 'c3' }));
    expect(e2.message).toContain('cgroup v2 has no net_prio controller');
    expect(leaves(v2).filter((d) => d.endsWith('/c3'))).toEqual([]);
  });

  it('unified files (OCI unified, podman --cgroup-conf): written last on v2, each one\'s controller enabled; a controller not offered, or a hybrid host, is an error before anything is made', () => {
    const host = v2Host();
    const c = create(host, { memory: '64m', unified: { 'memory.high': '33554432', 'cgroup.max.descendants': '3' } });
    const leaf = c.v2Path!;
    const writes = host.k.ops.filter((o) => o.startsWith(`write ${leaf}/`));
    expect(writes.slice(-2)).toEqual([`write ${leaf}/memory.high 33554432`, `write ${leaf}/cgroup.max.descendants 3`]);
    expect(cat(join(leaf, 'memory.high'))).toBe('33554432');

    const noHugetlb = v2Host();
    const before = noHugetlb.k.tree();
    const e = failure(() => create(noHugetlb, { unified: { 'hugetlb.2MB.max': '0' } }, { id: 'c2' }));
    expect(e.message).toContain('limits.unified["hugetlb.2MB.max"] needs the hugetlb controller, which is not available');
    expect(noHugetlb.k.tree()).toEqual(before);

    const hybrid = hybridHost();
    const e2 = failure(() => create(hybrid, { unified: { 'pids.max': '10' } }, { id: 'c3' }));
    expect(e2.message).toContain("limits.unified sets cgroup v2 files, and this host's cgroups are hybrid");
    expect(leaves(hybrid).filter((d) => d.endsWith('/c3'))).toEqual([]);
  });

  it('a per-device weight and rate, the device named by number (as an OCI config gives it): v1 and v2 files; one that is not there is refused', () => {
    const first = readdirSync('/sys/dev/block')[0]!;
    const [major, minor] = first.split(':').map(Number) as [number, number];
    const host = hybridHost();
    create(host, { blkioWeightDevice: [{ major, minor, weight: 500 }], deviceReadBps: [{ major, minor, rate: 1024 }] });
    expect(host.k.ops.filter((o) => o.includes('weight_device'))).toEqual([expect.stringMatching(new RegExp(`/blkio\\.bfq\\.weight_device ${first} 500$`))]);
    expect(host.k.ops.filter((o) => o.includes('read_bps_device'))).toEqual([expect.stringMatching(new RegExp(`/blkio\\.throttle\\.read_bps_device ${first} 1024$`))]);
    const v2 = v2Host();
    create(v2, { blkioWeightDevice: [{ major, minor, weight: 500 }], deviceReadBps: [{ major, minor, rate: 1024 }], deviceWriteIops: [{ major, minor, rate: 7 }] }, { id: 'c2' });
    expect(v2.k.ops.filter((o) => o.includes('/io.weight'))).toEqual([expect.stringMatching(new RegExp(`/io\\.weight ${first} 4950$`))]);
    // One io.max line for the device, with both rates.
    expect(v2.k.ops.filter((o) => o.includes('/io.max'))).toEqual([expect.stringMatching(new RegExp(`/io\\.max ${first} rbps=1024 wiops=7$`))]);
    const e = failure(() => create(hybridHost(), { deviceReadBps: [{ major: 4095, minor: 4095, rate: 1024 }] }, { id: 'c3' }));
    expect(e.message).toContain('there is no block device 4095:4095 on this host');
    expect(e.path).toBe('/sys/dev/block/4095:4095');
    // By path, the kernel's /sys/dev/block name is no block device: numbers are given as numbers.
    const p = failure(() => create(hybridHost(), { deviceReadBps: [{ path: `/sys/dev/block/${first}`, rate: 1024 }] }, { id: 'c4' }));
    expect(p.message).toContain('not a block device');
  });

  it('a limit device is a path or major and minor, not both nor neither', () => {
    for (const d of [{ path: '/dev/sda', major: 8, minor: 0, rate: 1 }, { rate: 1 }, { major: 8, rate: 1 }, { major: -1, minor: 0, rate: 1 }]) {
      const e = failure(() => create(hybridHost(), { deviceReadBps: [d as never] }));
      expect(e.step).toBe('config');
      expect(e.message).toContain('deviceReadBps[0]');
    }
  });
});

describe('hybrid (this development host\'s layout)', () => {
  it('writes an OCI bundle\'s device rules, in order, into the container\'s devices cgroup once it exists', () => {
    const host = hybridHost({ with: ['devices'] });
    const devices = [
      { file: 'devices.deny', value: 'a' },
      { file: 'devices.allow', value: 'c 10:229 rwm' },
      { file: 'devices.allow', value: 'c 1:3 rwm' },
    ] as const;
    const c = create(host, {}, { devices });
    const leaf = c.paths.devices!;
    expect(host.k.ops.filter((o) => o.includes('/devices.'))).toEqual([`write ${leaf}/devices.deny a`, `write ${leaf}/devices.allow c 10:229 rwm`, `write ${leaf}/devices.allow c 1:3 rwm`]);
    expect(host.k.ops.indexOf(`mkdir ${leaf}`)).toBeLessThan(host.k.ops.indexOf(`write ${leaf}/devices.deny a`));
  });

  it('refuses device rules without a v1 devices hierarchy, before anything is made (the eBPF program is for pure v2)', () => {
    const host = hybridHost();
    const before = host.k.tree();
    const e = failure(() => create(host, {}, { devices: [{ file: 'devices.deny', value: 'a' }] }));
    expect(e.message).toContain('device rules need a v1 devices hierarchy, and this host has none');
    expect(host.k.tree()).toEqual(before);
    expect(host.k.ops.some((o) => o.startsWith('bpf '))).toBe(false);
  });

  it('uses every v1 hierarchy and the unified one, the caller\'s own cgroup in each, and the v1 controllers for limits', () => {
    const host = hybridHost();
    const c = create(host, { memory: '64m', memorySwap: '96m', memoryReservation: '32m', cpuShares: 256, cpus: 0.5, cpusetCpus: '1', pidsLimit: 64, blkioWeight: 300 });
    expect(c.mode).toBe('hybrid');
    expect(c.v2Path).toBeNull();
    const expected: Record<string, string> = {};
    for (const h of V1_HIERARCHIES) expected[h] = join(host.cg, h, h === 'memory' ? 'session/abc' : '', 'tsbox/c1');
    // The unified hierarchy carries no controller here, but the container
    // gets a cgroup of its own in it too: its cgroup namespace is rooted there.
    expected.unified = join(host.cg, 'unified', 'tsbox/c1');
    expect(c.paths).toEqual(expected);
    const p = c.paths;
    expect(cat(join(p.memory!, 'memory.limit_in_bytes'))).toBe(String(64 * MiB));
    expect(cat(join(p.memory!, 'memory.memsw.limit_in_bytes'))).toBe(String(96 * MiB));
    expect(cat(join(p.memory!, 'memory.soft_limit_in_bytes'))).toBe(String(32 * MiB));
    expect(cat(join(p.cpu!, 'cpu.shares'))).toBe('256');
    expect(cat(join(p.cpu!, 'cpu.cfs_quota_us'))).toBe('50000');
    expect(cat(join(p.cpuset!, 'cpuset.cpus'))).toBe('1');
    expect(cat(join(p.pids!, 'pids.max'))).toBe('64');
    expect(cat(join(p.blkio!, 'blkio.bfq.weight'))).toBe('300');
    // Nothing is written there: no limit, no controller enabled.
    expect(host.k.ops.filter((o) => o.startsWith('write') && o.includes('/unified/'))).toEqual([]);
  });

  it('fills a new v1 cpuset cgroup from its parent before anything joins it', () => {
    const host = hybridHost();
    const c = create(host, { cpusetCpus: '2-3' });
    expect(cat(join(host.cg, 'cpuset/tsbox/cpuset.cpus'))).toBe('0-3');
    expect(cat(join(host.cg, 'cpuset/tsbox/cpuset.mems'))).toBe('0');
    expect(cat(join(c.paths.cpuset!, 'cpuset.mems'))).toBe('0');
    expect(cat(join(c.paths.cpuset!, 'cpuset.cpus'))).toBe('2-3');
    const leafOps = host.k.ops.filter((o) => o.includes(c.paths.cpuset!));
    expect(leafOps).toEqual([`mkdir ${c.paths.cpuset}`, `write ${c.paths.cpuset}/cpuset.cpus 0-3`, `write ${c.paths.cpuset}/cpuset.mems 0`, `write ${c.paths.cpuset}/cpuset.cpus 2-3`]);
    // Without a cpuset limit the container still gets a cpuset cgroup (its
    // namespace is rooted there), filled from its parent so a process may join.
    const c2 = create(host, {}, { id: 'c2' });
    expect(cat(join(c2.paths.cpuset!, 'cpuset.cpus'))).toBe('0-3');
  });

  it('fills an empty cgroup parent\'s cpuset (one made with mkdir) from its own parent first', () => {
    const host = hybridHost();
    for (const h of [...V1_HIERARCHIES, 'unified']) host.k.existing(join(host.cg, h, 'made'));
    writeFileSync(join(host.cg, 'cpuset/made/cpuset.cpus'), '');
    writeFileSync(join(host.cg, 'cpuset/made/cpuset.mems'), '');
    const c = create(host, {}, { parent: '/made' });
    expect(cat(join(host.cg, 'cpuset/made/cpuset.cpus'))).toBe('0-3');
    expect(cat(join(c.paths.cpuset!, 'cpuset.cpus'))).toBe('0-3');
    expect(cat(join(c.paths.cpuset!, 'cpuset.mems'))).toBe('0');
  });

  it('places the pid in every hierarchy', () => {
    const host = hybridHost();
    const c = create(host);
    c.place(555);
    for (const dir of Object.values(c.paths)) expect(host.k.procs(dir), dir).toEqual(['555']);
  });

  it('reads the v1 stats: max_usage_in_bytes, oom_control, cpuacct and cpu.stat (ns → µs)', () => {
    const host = hybridHost();
    const c = create(host, { memory: '64m' });
    writeFileSync(join(c.paths.memory!, 'memory.max_usage_in_bytes'), '33554432\n');
    writeFileSync(join(c.paths.memory!, 'memory.usage_in_bytes'), '4096\n');
    writeFileSync(join(c.paths.memory!, 'memory.oom_control'), 'oom_kill_disable 0\nunder_oom 0\noom_kill 2\n');
    writeFileSync(join(c.paths.cpuacct!, 'cpuacct.usage'), '3000000\n');
    writeFileSync(join(c.paths.cpuacct!, 'cpuacct.usage_user'), '2000000\n');
    writeFileSync(join(c.paths.cpuacct!, 'cpuacct.usage_sys'), '1000000\n');
    writeFileSync(join(c.paths.cpu!, 'cpu.stat'), 'nr_periods 20\nnr_throttled 5\nthrottled_time 7000000\nnr_bursts 0\n');
    writeFileSync(join(c.paths.pids!, 'pids.events'), 'max 3\n');
    expect(c.stats()).toEqual({
      memory: { current: 4096, peak: 33554432, oomKills: 2 },
      cpu: { usageUsec: 3000, userUsec: 2000, systemUsec: 1000, periods: 20, throttledPeriods: 5, throttledUsec: 7000 },
      pids: { current: 0, peak: null, limitHits: 3 },
    });
    expect(c.usage()).toEqual({ peakMemoryBytes: 33554432, oomKills: 2, peakPids: null, cpuThrottledPeriods: 5 });
    // Each from its own v1 hierarchy; known before the cgroup exists.
    const files = [join(c.paths.memory!, 'memory.max_usage_in_bytes'), join(c.paths.memory!, 'memory.oom_control'), join(c.paths.pids!, 'pids.peak'), join(c.paths.cpu!, 'cpu.stat')];
    expect(c.usageFiles).toEqual(files);
    expect(prepareCgroup('other', { memory: '64m' }, { stateDir, fs: host.k, proc: host.proc }).usageFiles).toEqual(files.map((f) => f.replace(c.id, 'other')));
    expect(c.usageFrom(files.map((f) => (existsSync(f) ? readFileSync(f, 'utf8') : null)))).toEqual(c.usage());
  });

  it('falls back to cpuacct.stat ticks on kernels without usage_user/usage_sys', () => {
    const host = hybridHost();
    host.k.missing.add('cpuacct.usage_user');
    host.k.missing.add('cpuacct.usage_sys');
    const c = create(host);
    writeFileSync(join(c.paths.cpuacct!, 'cpuacct.stat'), 'user 150\nsystem 20\n');
    expect(c.stats().cpu).toMatchObject({ userUsec: 1_500_000, systemUsec: 200_000 });
  });

  it('prepareCgroup decides every directory and makes nothing until create(), which runs once', () => {
    const host = hybridHost();
    host.k.ops.length = 0;
    const p = prepareCgroup('c1', { memory: '64m' }, { stateDir, fs: host.k, proc: host.proc });
    expect(p.mode).toBe('hybrid');
    expect(p.v2Path).toBeNull();
    expect(Object.keys(p.paths).sort()).toEqual(['blkio', 'cpu', 'cpuacct', 'cpuset', 'freezer', 'memory', 'pids', 'unified']);
    expect(host.k.ops).toEqual([]);
    expect(existsSync(join(stateDir, 'c1.json'))).toBe(false);
    const c = p.create();
    made.push(c);
    expect(c.paths).toEqual(p.paths);
    for (const dir of Object.values(p.paths)) expect(existsSync(dir!), dir).toBe(true);
    expect(readFileSync(join(p.paths.memory!, 'memory.limit_in_bytes'), 'utf8').trim()).toBe(String(64 * 1024 * 1024));
    expect(() => p.create()).toThrow(/once/);
  });

  it("tells how a thread enters the v1 cgroups by itself and goes back (tasks files), where it can", () => {
    const host = hybridHost();
    const p = prepareCgroup('c1', {}, { stateDir, fs: host.k, proc: host.proc });
    const v1 = Object.entries(p.paths).filter(([h]) => h !== 'unified');
    expect(p.enter).not.toBeNull();
    expect(p.enter!.tasks).toEqual(v1.map(([, dir]) => join(dir, 'tasks')));
    // Hierarchy by hierarchy, this process's own cgroup (memory: a sub-cgroup).
    expect(p.enter!.home).toEqual(v1.map(([h]) => join(host.cg, h, h === 'memory' ? 'session/abc' : '', 'tasks')));
    // The unified hierarchy has no tasks file: clone3 takes it.
    expect(p.enter!.tasks.some((t) => t.includes('unified'))).toBe(false);
    // The mover is counted while it clones: not under a pids limit below 2.
    expect(prepareCgroup('c2', { pidsLimit: 1 }, { stateDir, fs: host.k, proc: host.proc }).enter).toBeNull();
    expect(prepareCgroup('c3', { pidsLimit: 2 }, { stateDir, fs: host.k, proc: host.proc }).enter).not.toBeNull();
    expect(prepareCgroup('c4', { pidsLimit: -1 }, { stateDir, fs: host.k, proc: host.proc }).enter).not.toBeNull();
    // A joined cgroup may be frozen: the mover would freeze with it.
    host.k.existing(join(host.cg, 'pids', 'kept'));
    expect(prepareCgroup('c6', {}, { stateDir, fs: host.k, proc: host.proc, path: '/kept' }).enter).toBeNull();
    expect(prepareCgroup('c7', {}, { stateDir, fs: host.k, proc: host.proc, path: '/made' }).enter).not.toBeNull();
    // v2 clones straight into its cgroup.
    const v2 = v2Host();
    expect(prepareCgroup('c5', {}, { stateDir, fs: v2.k, proc: v2.proc }).enter).toBeNull();
  });

  it('enters co-mounted controllers once, and a named hierarchy too, each from this process\'s own cgroup in it', () => {
    const cg = join(tmp, 'sys/fs/cgroup');
    const k = new FakeKernel(tmp);
    const hierarchies: [string, string, string][] = [
      ['cpu,cpuacct', 'cpu,cpuacct', '/'],
      ['pids', 'pids', '/user.slice'],
      ['systemd', 'xattr,name=systemd', '/user.slice/session-1.scope'],
    ];
    let mountinfo = '';
    let cgroup = '';
    hierarchies.forEach(([dir, options, own], i) => {
      k.mounts.set(join(cg, dir), dir);
      k.existing(join(cg, dir), ['1']);
      if (own !== '/') k.existing(join(cg, dir, own), [String(process.pid)]);
      mountinfo += `${32 + i} 31 0:${29 + i} / ${join(cg, dir)} rw,relatime - cgroup cgroup rw,${options}\n`;
      cgroup += `${i + 1}:${options.replace('xattr,', '')}:${own}\n`;
    });
    const p = prepareCgroup('c1', {}, { stateDir, fs: k, proc: { mountinfo, cgroup } });
    const leaf = (dir: string) => join(cg, dir, hierarchies.find(([d]) => d === dir)![2], 'tsbox', 'c1');
    expect(p.paths.cpu).toBe(p.paths.cpuacct);
    expect([...p.enter!.tasks].sort()).toEqual(['cpu,cpuacct', 'pids', 'systemd'].map((d) => join(leaf(d), 'tasks')).sort());
    expect(p.enter!.home).toEqual(p.enter!.tasks.map((t) => join(dirname(dirname(dirname(t))), 'tasks')));
  });

  it('removes an ended container with one rmdir per hierarchy, nothing else; the parents stay for the next', () => {
    const host = hybridHost();
    const c = create(host);
    host.k.ops.length = 0;
    c.destroy();
    const rmdirs = Object.values(c.paths).map((d) => `rmdir ${d}`);
    expect([...host.k.ops].sort()).toEqual(rmdirs.sort());
    expect(leaves(host)).toEqual([]);
    expect(tsboxLeft(host).sort()).toEqual([...new Set(Object.values(c.paths).map((d) => dirname(d!).slice(tmp.length)))].sort());
    // The next container makes its leaves only: one mkdir per hierarchy.
    host.k.ops.length = 0;
    const next = create(host, {}, { id: 'c2' });
    expect(host.k.ops.filter((o) => o.startsWith('mkdir'))).toEqual(Object.values(next.paths).map((d) => `mkdir ${d}`));
    next.destroy();
    gc({ stateDir, fs: host.k, proc: host.proc });
    expect(tsboxLeft(host)).toEqual([]);
  });

  it('still freezes and kills what is left in a later hierarchy after the empty ones went', () => {
    const host = hybridHost();
    const c = create(host);
    writeFileSync(join(c.paths.pids!, 'cgroup.procs'), '300\n');
    host.k.ops.length = 0;
    c.destroy();
    const freezer = c.paths.freezer!;
    const i = host.k.ops.indexOf(`write ${freezer}/freezer.state FROZEN`);
    expect(i).toBeGreaterThan(0);
    expect(host.k.ops.slice(i, i + 3)).toEqual([`write ${freezer}/freezer.state FROZEN`, 'kill 300 SIGKILL', `write ${freezer}/freezer.state THAWED`]);
    expect(leaves(host)).toEqual([]);
  });

  it('kills on v1: freeze, SIGKILL every pid in any hierarchy, thaw; then rmdir its cgroup in every hierarchy', () => {
    const host = hybridHost();
    const c = create(host);
    writeFileSync(join(c.paths.pids!, 'cgroup.procs'), '200\n201\n');
    writeFileSync(join(c.paths.memory!, 'cgroup.procs'), '200\n201\n202\n');
    host.k.ops.length = 0;
    c.destroy();
    const freezer = c.paths.freezer!;
    // cgroup.kill in the unified hierarchy first (5.14+), then the v1 round for what it may have missed.
    expect(host.k.ops.slice(0, 6)).toEqual([
      `write ${c.paths.unified}/cgroup.kill 1`,
      `write ${freezer}/freezer.state FROZEN`,
      'kill 200 SIGKILL',
      'kill 201 SIGKILL',
      'kill 202 SIGKILL',
      `write ${freezer}/freezer.state THAWED`,
    ]);
    const rmdirs = host.k.ops.filter((o) => o.startsWith('rmdir'));
    expect(Object.keys(c.paths).sort()).toEqual(['blkio', 'cpu', 'cpuacct', 'cpuset', 'freezer', 'memory', 'pids', 'unified']);
    for (const h of Object.keys(c.paths)) expect(rmdirs.indexOf(`rmdir ${c.paths[h]}`), h).toBeGreaterThanOrEqual(0);
    expect(leaves(host)).toEqual([]);
  });

  it('without a freezer hierarchy: kills in rounds until the cgroups are empty', () => {
    const host = hybridHost({ without: ['freezer'] });
    const c = create(host);
    expect(c.paths.freezer).toBeUndefined();
    writeFileSync(join(c.paths.pids!, 'cgroup.procs'), '300\n');
    c.destroy();
    expect(host.k.ops).toContain('kill 300 SIGKILL');
    expect(leaves(host)).toEqual([]);
  });

  it('a container of thousands of processes: killed a batch of pidfds at a time, never one descriptor each at once', () => {
    const host = hybridHost({ without: ['freezer'] });
    const c = create(host);
    const pids = Array.from({ length: 600 }, (_, i) => String(1000 + i));
    writeFileSync(join(c.paths.pids!, 'cgroup.procs'), pids.join('\n'));
    c.destroy();
    expect(host.k.ops.filter((o) => o.startsWith('kill ')).sort()).toEqual(pids.map((p) => `kill ${p} SIGKILL`).sort());
    expect(host.k.mostPidfds).toBeLessThanOrEqual(256);
    expect(host.k.openPidfds()).toBe(0);
    expect(leaves(host)).toEqual([]);
  });

  it('without a freezer: a pid that leaves the cgroup after the listing is not killed, its number may be a host process\'s by then', () => {
    const host = hybridHost({ without: ['freezer'] });
    const c = create(host);
    const procs = join(c.paths.pids!, 'cgroup.procs');
    writeFileSync(procs, '300\n301\n');
    // Teardown reads this file to see that the cgroup is not empty, then to
    // list what to kill; right after that listing, 300 exits and an
    // unrelated host process gets its number.
    let reads = 0;
    host.k.afterRead = (path) => {
      if (path !== procs || ++reads !== 2) return;
      writeFileSync(procs, '301\n');
      host.k.hostPids.add('300');
    };
    c.destroy();
    expect(reads).toBeGreaterThanOrEqual(2);
    expect(host.k.ops).toContain('kill 301 SIGKILL');
    expect(host.k.ops).not.toContain('kill 300 SIGKILL');
    expect(host.k.openPidfds()).toBe(0);
    expect(leaves(host)).toEqual([]);
  });

  it('a limit whose v1 hierarchy is not mounted is an error; without the limit the hierarchy is just not used', () => {
    const host = hybridHost({ without: ['blkio'] });
    const before = host.k.tree();
    const e = failure(() => create(host, { blkioWeight: 500 }));
    expect(e.errno).toBe(errnos.ENOENT);
    expect(e.message).toMatch(/io controller is not mounted, and limits.blkioWeight needs it/);
    expect(e.hint).toMatch(/mount -t cgroup -o blkio/);
    expect(host.k.tree()).toEqual(before);
    expect(create(host).paths.blkio).toBeUndefined();
  });

  it('a weight file the kernel lacks (no BFQ): an error naming both files', () => {
    const host = hybridHost();
    host.k.missing.add('blkio.bfq.weight');
    const e = failure(() => create(host, { blkioWeight: 500 }));
    expect(e.message).toMatch(/limits.blkioWeight: the kernel has no blkio.weight or blkio.bfq.weight/);
    expect(e.hint).toMatch(/BFQ/);
    expect(host.k.tree().filter((d) => d.includes('tsbox'))).toEqual([]);
  });

  it('a write failing half-way removes the directories of every hierarchy', () => {
    const host = hybridHost();
    host.k.fail('write', '/pids.max', 'EINVAL');
    failure(() => create(host, { memory: '64m', pidsLimit: 5 }));
    expect(host.k.tree().filter((d) => d.includes('tsbox'))).toEqual([]);
    expect(markers()).toEqual([]);
  });

  it('uses the unified mount for a controller that only it has, and places the pid there too', () => {
    const host = hybridHost({ without: ['pids'], unifiedControllers: ['pids'] });
    const c = create(host, { pidsLimit: 10 });
    expect(c.v2Path).toBeNull();
    expect(c.paths.unified).toBe(join(host.cg, 'unified/tsbox/c1'));
    expect(cat(join(c.paths.unified!, 'pids.max'))).toBe('10');
    c.place(77);
    expect(host.k.procs(c.paths.unified!)).toEqual(['77']);
    expect(host.k.procs(c.paths.memory!)).toEqual(['77']);
  });
});

describe('an exact cgroup path (OCI cgroupsPath)', () => {
  it('v2: makes the missing ancestors, enabling the controllers down to it, and removes what it made once empty', () => {
    const host = v2Host();
    const c = create(host, { pidsLimit: 100 }, { path: '/machine/pod/c1' });
    const leaf = join(host.cg, 'machine/pod/c1');
    expect(c.paths).toEqual({ unified: leaf });
    expect(host.k.ops).toEqual([
      `write ${host.cg}/cgroup.subtree_control +memory`,
      `write ${host.cg}/cgroup.subtree_control +cpu`,
      `write ${host.cg}/cgroup.subtree_control +pids`,
      `mkdir ${host.cg}/machine`,
      `write ${host.cg}/machine/cgroup.subtree_control +memory`,
      `write ${host.cg}/machine/cgroup.subtree_control +cpu`,
      `write ${host.cg}/machine/cgroup.subtree_control +pids`,
      `mkdir ${host.cg}/machine/pod`,
      `write ${host.cg}/machine/pod/cgroup.subtree_control +memory`,
      `write ${host.cg}/machine/pod/cgroup.subtree_control +cpu`,
      `write ${host.cg}/machine/pod/cgroup.subtree_control +pids`,
      `mkdir ${leaf}`,
      `write ${leaf}/pids.max 100`,
    ].filter((op) => !op.startsWith(`write ${host.cg}/cgroup.subtree_control`)));
    c.destroy();
    gc({ stateDir, fs: host.k, proc: host.proc });
    expect(existsSync(join(host.cg, 'machine'))).toBe(false);
  });

  it('a relative path goes under the default parent; . and .. are refused', () => {
    const host = v2Host();
    const c = create(host, {}, { path: 'pods/c1' });
    expect(c.v2Path).toBe(join(host.cg, 'system.slice/pods/c1'));
    expect(failure(() => create(host, {}, { id: 'c2', path: '/a/../../etc' })).message).toMatch(/outside this cgroup namespace/);
    expect(failure(() => create(host, {}, { id: 'c3', path: '/' })).message).toMatch(/root of the cgroup hierarchy/);
  });

  it('hybrid: joins an empty cgroup that exists, and keeps it when the container goes; refuses one with processes', () => {
    const host = hybridHost();
    host.k.existing(join(host.cg, 'pids/cgrouptest'));
    const c = create(host, { pidsLimit: 1000 }, { path: '/cgrouptest' });
    expect(c.paths.pids).toBe(join(host.cg, 'pids/cgrouptest'));
    expect(c.paths.memory).toBe(join(host.cg, 'memory/cgrouptest'));
    expect(cat(join(host.cg, 'pids/cgrouptest/pids.max'))).toBe('1000');
    c.place(4242);
    c.destroy();
    // Made by the container: gone. There before: kept, and emptied.
    expect(existsSync(join(host.cg, 'memory/cgrouptest'))).toBe(false);
    expect(existsSync(join(host.cg, 'pids/cgrouptest'))).toBe(true);
    expect(host.k.ops).toContain("kill 4242 SIGKILL");
    host.k.existing(join(host.cg, 'cpu/busy'), ['77']);
    expect(failure(() => create(host, {}, { id: 'c2', path: '/busy' })).message).toMatch(/the cgroup exists and has processes \(77\)/);
    expect(existsSync(join(host.cg, 'memory/busy'))).toBe(false);
    // Someone's subtree (a slice of services, with no process of its own): refused, untouched.
    host.k.existing(join(host.cg, 'pids/slice'));
    host.k.existing(join(host.cg, 'pids/slice/service'), ['88']);
    expect(failure(() => create(host, {}, { id: 'c3', path: '/slice' })).message).toMatch(/the cgroup exists and has child cgroups \(service\)/);
    expect(host.k.ops.some((op) => op.includes('slice') && !op.startsWith('mkdir'))).toBe(false);
    expect(existsSync(join(host.cg, 'pids/slice/service'))).toBe(true);
  });
});

describe('updateCgroup (an OCI runtime\'s update)', () => {
  it('writes only the limits given, in each one\'s hierarchy; the default pids limit stays as it is', () => {
    const host = hybridHost();
    const c = create(host, { memory: '64m' });
    host.k.ops.length = 0;
    const writes = updateCgroup('c1', { memory: '100m', cpuShares: 512 }, { stateDir, fs: host.k });
    // Memory alone: swap stays as create set it (Docker's default is create's, not update's).
    expect(writes.map((w) => `${w.path.slice(host.cg.length)}=${w.value}`)).toEqual([
      `/memory/session/abc/tsbox/c1/memory.limit_in_bytes=${100 * MiB}`,
      '/cpu/tsbox/c1/cpu.shares=512',
    ]);
    expect(cat(join(c.paths.memory!, 'memory.memsw.limit_in_bytes'))).toBe(String(128 * MiB));
    const both = updateCgroup('c1', { memory: '128m', memorySwap: '300m' }, { stateDir, fs: host.k });
    expect(both.map((w) => `${w.path.slice(host.cg.length)}=${w.value}`)).toEqual([
      `/memory/session/abc/tsbox/c1/memory.limit_in_bytes=${128 * MiB}`,
      `/memory/session/abc/tsbox/c1/memory.memsw.limit_in_bytes=${300 * MiB}`,
    ]);
    expect(host.k.ops.some((op) => op.includes('pids.max'))).toBe(false);
    expect(cat(join(c.paths.memory!, 'memory.limit_in_bytes'))).toBe(String(128 * MiB));
  });

  it('containerStats reads a container\'s usage and limits from any process, through its marker', () => {
    const host = v2Host();
    const c = create(host, { memory: '64m', pidsLimit: 20 });
    writeFileSync(join(c.v2Path!, 'memory.current'), '1048576');
    writeFileSync(join(c.v2Path!, 'pids.current'), '3');
    const s = containerStats('c1', { stateDir, fs: host.k })!;
    expect(s.memory.current).toBe(1048576);
    expect(s.pids.current).toBe(3);
    expect(s.limits).toEqual({ memory: 64 * MiB, pids: 20 });
    expect(containerStats('nope', { stateDir, fs: host.k })).toBeNull();
  });

  it('refuses a limit whose controller the cgroup lacks, and a container without a cgroup', () => {
    const host = v2Host();
    create(host);
    expect(failure(() => updateCgroup('c1', { cpusetCpus: '0' }, { stateDir, fs: host.k })).message).toMatch(/has no cpuset controller, which cpusetCpus needs/);
    expect(failure(() => updateCgroup('nope', { memory: '64m' }, { stateDir, fs: host.k })).message).toMatch(/has no cgroup/);
  });
});

describe('v1 with cpu and cpuacct co-mounted', () => {
  it('uses the one directory for both', () => {
    const cg = join(tmp, 'sys/fs/cgroup');
    const k = new FakeKernel(tmp);
    const mountinfo = [`34 30 0:30 / ${cg}/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct`, `36 30 0:32 / ${cg}/pids rw - cgroup cgroup rw,pids`].join('\n');
    k.mounts.set(`${cg}/cpu,cpuacct`, 'cpu');
    k.mounts.set(`${cg}/pids`, 'pids');
    k.existing(`${cg}/cpu,cpuacct`);
    k.existing(`${cg}/pids`);
    // The fake populates the cpu hierarchy with cpu files; add cpuacct's.
    for (const [f, v] of Object.entries(V1_FILES.cpuacct!)) writeFileSync(join(cg, 'cpu,cpuacct', f), v);
    const c = createCgroup('c1', { cpuShares: 512 }, { stateDir, fs: k, proc: { mountinfo, cgroup: '3:cpu,cpuacct:/\n2:pids:/\n' } });
    expect(c.mode).toBe('v1');
    expect(c.paths.cpu).toBe(join(cg, 'cpu,cpuacct/tsbox/c1'));
    expect(c.paths.cpuacct).toBe(c.paths.cpu);
    expect(k.ops.filter((o) => o.startsWith('mkdir') && o.endsWith('/c1'))).toHaveLength(2);
    c.place(9);
    expect(k.procs(c.paths.cpu!)).toEqual(['9']);
    c.destroy();
    expect(k.tree()).toEqual(['/sys/fs/cgroup/cpu,cpuacct/tsbox', '/sys/fs/cgroup/pids/tsbox']);
    gc({ stateDir, fs: k, proc: { mountinfo, cgroup: '3:cpu,cpuacct:/\n2:pids:/\n' } });
    expect(k.tree()).toEqual([]);
  });
});

describe('gc', () => {
  /** A pid that is not running: a child that has exited and been reaped. */
  function deadPid(): number {
    const r = spawnSync('/bin/sh', ['-c', 'echo $$']);
    return Number(r.stdout.toString().trim());
  }

  it('removes the cgroups of a dead owner, killing what is left, and keeps a live owner\'s', () => {
    const host = v2Host();
    const dead = create(host, {}, { id: 'dead', owner: deadPid() });
    const live = create(host, {}, { id: 'live' });
    dead.place(900);
    const removed = gc({ stateDir, fs: host.k, proc: host.proc });
    expect(removed).toEqual(['dead']);
    expect(host.k.ops).toContain('(kernel) SIGKILL 900');
    expect(existsSync(dead.v2Path!)).toBe(false);
    expect(existsSync(live.v2Path!)).toBe(true);
    expect(markers()).toEqual(['live.json']);
  });

  it('a recycled owner pid (another start time) counts as dead', () => {
    const host = v2Host();
    create(host, {}, { id: 'old' });
    const path = join(stateDir, 'old.json');
    writeFileSync(path, JSON.stringify({ ...JSON.parse(readFileSync(path, 'utf8')), ownerStart: '1' }));
    expect(gc({ stateDir, fs: host.k, proc: host.proc })).toEqual(['old']);
  });

  it('removes unmarked empty tsbox/<id> cgroups and keeps unmarked ones with processes', () => {
    const host = v2Host();
    create(host, {}, { id: 'keep' });
    const tsbox = join(host.cg, 'system.slice/tsbox');
    host.k.mkdir(join(tsbox, 'stray'));
    host.k.mkdir(join(tsbox, 'busy'));
    writeFileSync(join(tsbox, 'busy/cgroup.procs'), '4242');
    expect(gc({ stateDir, fs: host.k, proc: host.proc })).toEqual(['stray']);
    expect(readdirSync(tsbox).filter((n) => statSync(join(tsbox, n)).isDirectory()).sort()).toEqual(['busy', 'keep']);
  });

  it('finds v1 orphans in every hierarchy and removes the tsbox parents they leave empty', () => {
    const host = hybridHost();
    const before = host.k.tree();
    create(host, { memory: '64m' }, { id: 'gone', owner: deadPid() });
    expect(gc({ stateDir, fs: host.k, proc: host.proc })).toEqual(['gone']);
    expect(host.k.tree()).toEqual(before);
    expect(markers()).toEqual([]);
  });

  it("leaves a tsbox parent this user may not remove (root's, seen by an ordinary user's gc) without failing", () => {
    const host = hybridHost();
    create(host, { memory: '64m' }, { id: 'gone', owner: deadPid() });
    const realRmdir = host.k.rmdir.bind(host.k);
    host.k.rmdir = (p: string) => {
      if (p.endsWith('/tsbox')) throw Object.assign(new Error(`EACCES: permission denied, rmdir '${p}'`), { code: 'EACCES', errno: -13 });
      realRmdir(p);
    };
    expect(gc({ stateDir, fs: host.k, proc: host.proc })).toEqual(['gone']);
    expect(markers()).toEqual([]);
  });

  it('drops a stale marker whose cgroups are gone, without counting it', () => {
    const host = v2Host();
    mkdirSync(stateDir, { recursive: true });
    writeFileSync(join(stateDir, 'ghost.json'), JSON.stringify({ id: 'ghost', ownerPid: deadPid(), ownerStart: null, dirs: { unified: join(host.cg, 'system.slice/tsbox/ghost') }, parents: [] }));
    expect(gc({ stateDir, fs: host.k, proc: host.proc })).toEqual([]);
    expect(markers()).toEqual([]);
  });

  it('leaves a cgroup alone whose marker appeared after gc read the markers (a container being created)', () => {
    const host = v2Host();
    const tsbox = join(host.cg, 'system.slice/tsbox');
    mkdirSync(tsbox);
    host.k.populate(tsbox);
    host.k.mkdir(join(tsbox, 'new'));
    // Written "meanwhile": gc reads the directory of markers first, but checks again before removing.
    const realSubdirs = host.k.subdirs.bind(host.k);
    host.k.subdirs = (p: string) => {
      if (p === tsbox) {
        mkdirSync(stateDir, { recursive: true });
        writeFileSync(join(stateDir, 'new.json'), '{}');
      }
      return realSubdirs(p);
    };
    expect(gc({ stateDir, fs: host.k, proc: host.proc })).toEqual([]);
    expect(existsSync(join(tsbox, 'new'))).toBe(true);
  });
});
