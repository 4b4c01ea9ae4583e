/**
 * cpuset: the CPUs and memory nodes a container may use. Same file names on
 * v1 and v2; on v1 a new cpuset cgroup starts empty and takes no process
 * until both files are filled, so the driver copies the parent's values into
 * every cpuset directory it creates ({@link CPUSET_INHERIT}) before these writes.
 */
import type { Controller, LimitWrite } from './controller.js';

const HINT = 'the kernel has no cpuset controller file; enable the cpuset controller';

/** The v1 files a new cpuset cgroup must copy from its parent before it can take a process. */
export const CPUSET_INHERIT = ['cpuset.cpus', 'cpuset.mems'] as const;

export const cpuset: Controller = {
  name: 'cpuset',
  v1: ['cpuset'],
  limits: ['cpusetCpus', 'cpusetMems'],
  stats: false,
  required: (l) => l.cpusetCpus !== undefined || l.cpusetMems !== undefined,
  writes(version, l) {
    const h = version === 1 ? 'cpuset' : 'unified';
    const out: LimitWrite[] = [];
    // mems first: on v1 the kernel wants both set, and a task needs mems to allocate.
    if (l.cpusetMems !== undefined) out.push({ hierarchy: h, files: [{ file: 'cpuset.mems', value: l.cpusetMems }], limit: 'cpusetMems', missingHint: HINT });
    if (l.cpusetCpus !== undefined) out.push({ hierarchy: h, files: [{ file: 'cpuset.cpus', value: l.cpusetCpus }], limit: 'cpusetCpus', missingHint: HINT });
    return out;
  },
};
