/**
 * Cgroups for tsbox containers: v1, hybrid and v2 (DESIGN.md, ts/cgroups).
 *
 * ```ts
 * const cg = createCgroup(id, { memory: '64m', cpus: 1.5 });   // (1) before the workload exists
 * // v2: clone3(CLONE_INTO_CGROUP) into cg.v2Path; v1/hybrid: cg.place(pid) at sync point 3
 * // ... the workload runs and exits ...
 * const usage = cg.stats();                                      // (5) peak memory, oom kills, cpu, pids
 * cg.destroy();                                                  //     kill what is left, rmdir
 * ```
 *
 * API
 * - `detectCgroupMode(): 'v1' | 'hybrid' | 'v2'`.
 * - `createCgroup(id, limits?, opts?): Cgroup` — synchronous (each cgroupfs
 *   call is microseconds; launch latency matters). Parses `limits` with
 *   `cgroupLimitsSchema`, decides every directory and write, writes an orphan
 *   marker, creates `<parent>/tsbox/<id>` in each hierarchy it uses, enables
 *   the controllers on v2, writes the limits. On any failure it removes what
 *   it created and throws a TsboxError: step `config` (bad limits, with JSON
 *   paths) or `cgroup` (errno of the failed call, the path, a hint). A limit is
 *   never dropped silently: a missing controller or file is an error unless
 *   the write is a default (Docker's implicit swap).
 * - `prepareCgroup(id, limits?, opts?): PreparedCgroup` — the same in two
 *   halves: the checks and every decision now (`mode`, `paths`, `v2Path`,
 *   `procsFiles`), nothing made until `create()`. `prepareParsedCgroup`
 *   takes limits parsed already (a launch's resolved options).
 * - `Cgroup`: `mode`, `id`, `v2Path` (the absolute cgroup2 directory for
 *   CLONE_INTO_CGROUP on pure v2, else null), `paths` (directory per
 *   hierarchy), `place(pid)`, `stats()`, `kill()`, `destroy()`, `applied()`
 *   (the limits and every file written, for the report), `setOwner(pid)`.
 * - `gc(opts?): string[]` — removes orphaned `tsbox/<id>` cgroups; call it on
 *   start and from `tsbox gc`.
 * - Limits: `cgroupLimitFields` (each limit's zod schema, built when first
 *   given: the options' schema has them among its fields), `cgroupLimitsSchema`
 *   (their strict object, ts/config/lazy.ts), `parseLimits`, `DEFAULT_PIDS_LIMIT`, `parseByteSize`,
 *   and the conversions (shares↔weight, blkio↔io weight, cpus→quota, cpu.max).
 *
 * Where the cgroups go: `<parent>/tsbox/<id>` in every hierarchy used. The
 * parent is the configured one, else on v1 the caller's own cgroup, and on v2
 * the caller's own cgroup if it is the root, else its parent — the kernel
 * refuses controllers for the children of a non-root cgroup holding processes,
 * and the caller is always in its own (runc does the same; see parentPath in
 * detect.ts). As root, a default parent that a user owns (root run from a
 * user's delegated cgroup) gives way to the root of the hierarchy
 * (root-parent.ts). On v2 tsbox enables the controllers it needs in the parent's and
 * in `tsbox`'s cgroup.subtree_control and never disables them (other
 * containers may use them). A parent with processes in it is refused with a
 * hint rather than having its processes moved.
 *
 * Controllers: memory, cpu (+cpuacct on v1), cpuset, pids, io/blkio, each in
 * its own file with v1 and v2 side by side; freezer (v1) for teardown. On
 * hybrid hosts the v1 controllers are used and the unified mount only for a
 * controller no v1 hierarchy has.
 */
export { detectCgroupMode, hasV1Devices, ownV1Procs, readProcSource, type CgroupMode, type ProcSource } from './detect.js';
export { containerStats, createCgroup, prepareCgroup, prepareParsedCgroup, updateCgroup, type AppliedLimits, type Cgroup, type CreateOptions, type DeviceRuleWrite, type PreparedCgroup } from './driver.js';
export type { CgroupStats, CgroupUsage } from './controller.js';
export { collectOne, containerPids, gc, defaultStateDir, type GcOptions } from './gc.js';
export { isPaused, setPaused } from './pause.js';
export type { CgroupFs } from './fs.js';
export {
  blkioWeightToIoWeight,
  cgroupLimitFields,
  cgroupLimitsSchema,
  cpuSharesToWeight,
  cpusToQuota,
  cpuWeightToShares,
  DEFAULT_CPU_PERIOD,
  DEFAULT_PIDS_LIMIT,
  formatCpuMax,
  ioWeightToBlkioWeight,
  parseByteSize,
  parseCpuMax,
  parseLimits,
  type CgroupLimits,
  type CgroupLimitsInput,
} from './limits.js';
