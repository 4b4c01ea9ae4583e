/**
 * net_cls and net_prio: a class id on the container's packets, and their
 * priority per interface. cgroup v1 only: v2 has neither (nftables and tc
 * match a v2 cgroup by its path instead), so there they are refused.
 *
 * | limit             | v1                                   |
 * |-------------------|--------------------------------------|
 * | networkClassId    | net_cls.classid                      |
 * | networkPriorities | net_prio.ifpriomap "IFNAME PRIO", one write each |
 */
import type { Controller } from './controller.js';

export const netCls: Controller = {
  name: 'net_cls',
  v1: ['net_cls'],
  v1Only: 'cgroup v2 has no net_cls controller (nftables matches a v2 cgroup by its path: socket cgroupv2)',
  limits: ['networkClassId'],
  stats: false,
  required: (l) => l.networkClassId !== undefined,
  writes: (_version, l) =>
    l.networkClassId === undefined ? [] : [{ hierarchy: 'net_cls', files: [{ file: 'net_cls.classid', value: String(l.networkClassId) }], limit: 'networkClassId', missingHint: 'the kernel has no net_cls.classid (CONFIG_CGROUP_NET_CLASSID)' }],
};

export const netPrio: Controller = {
  name: 'net_prio',
  v1: ['net_prio'],
  v1Only: 'cgroup v2 has no net_prio controller',
  limits: ['networkPriorities'],
  stats: false,
  required: (l) => (l.networkPriorities?.length ?? 0) > 0,
  writes: (_version, l) =>
    (l.networkPriorities ?? []).map((p) => ({
      hierarchy: 'net_prio',
      files: [{ file: 'net_prio.ifpriomap', value: `${p.name} ${p.priority}` }],
      limit: 'networkPriorities' as const,
      missingHint: 'the kernel has no net_prio.ifpriomap (CONFIG_CGROUP_NET_PRIO)',
    })),
};
