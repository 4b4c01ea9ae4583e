/**
 * Sync point 1 (DESIGN.md): turns validated options into the launch plan the
 * helper executes. Parse first, act second: every mount, id and capability is
 * decided here, in one place, before anything is cloned.
 */
import { statSync } from 'node:fs';
import { resolve } from 'node:path';

import { DEFAULT_CAPABILITIES, DEFAULT_PATH } from '../config/defaults.js';
import type { ResolvedOptions } from '../config/schema.js';
import { TsboxError } from '../errors.js';

/** Mirrors tsbox_core::Plan (crates/tsbox-core/src/plan.rs); the version guards the pair. */
export interface Plan {
  version: number;
  argv: string[];
  env: string[];
  cwd: string;
  hostname: string;
  namespaces: Namespace[];
  rootfs: { kind: 'path'; path: string; readonly: boolean };
  mounts: PlanMount[];
  init: boolean;
  user: { uid: number; gid: number; additionalGids: number[] };
  capabilities: string[] | null;
  noNewPrivileges: boolean;
  rlimits: { name: string; soft: number | null; hard: number | null }[];
  trace: boolean;
  traceT0Ns: number;
  parentPid: number;
}

export type Namespace = 'user' | 'pid' | 'mount' | 'net' | 'ipc' | 'uts' | 'cgroup';
export const ALL_NAMESPACES: readonly Namespace[] = ['user', 'pid', 'mount', 'net', 'ipc', 'uts', 'cgroup'];

export interface MountFlags {
  readonly?: boolean;
  nosuid?: boolean;
  nodev?: boolean;
  noexec?: boolean;
}

export type PlanMount = { target: string } & MountFlags &
  (
    | { type: 'bind'; source: string; recursive: boolean }
    | { type: 'fs'; fstype: string; data: string | null }
    | { type: 'symlink'; link: string }
    | { type: 'dir'; mode: number }
  );

const fs = (target: string, fstype: string, data: string | null, flags: MountFlags): PlanMount => ({ target, type: 'fs', fstype, data, ...flags });

/** The devices a container sees: the OCI default set, bound from the host's /dev. */
export const DEVICES = ['null', 'zero', 'full', 'random', 'urandom', 'tty'] as const;

/** /proc, /sys and a minimal /dev, as runc and Docker give them. */
export function systemMounts(): PlanMount[] {
  return [
    fs('/proc', 'proc', null, { nosuid: true, nodev: true, noexec: true }),
    fs('/sys', 'sysfs', null, { readonly: true, nosuid: true, nodev: true, noexec: true }),
    fs('/dev', 'tmpfs', 'mode=755,size=65536k', { nosuid: true }),
    ...DEVICES.map((d): PlanMount => ({ target: `/dev/${d}`, type: 'bind', source: `/dev/${d}`, recursive: false, nosuid: true, noexec: true })),
    fs('/dev/pts', 'devpts', 'newinstance,ptmxmode=0666,mode=0620', { nosuid: true, noexec: true }),
    { target: '/dev/ptmx', type: 'symlink', link: 'pts/ptmx' },
    fs('/dev/shm', 'tmpfs', 'mode=1777,size=65536k', { nosuid: true, nodev: true, noexec: true }),
    fs('/dev/mqueue', 'mqueue', null, { nosuid: true, nodev: true, noexec: true }),
    { target: '/dev/fd', type: 'symlink', link: '/proc/self/fd' },
    { target: '/dev/stdin', type: 'symlink', link: '/proc/self/fd/0' },
    { target: '/dev/stdout', type: 'symlink', link: '/proc/self/fd/1' },
    { target: '/dev/stderr', type: 'symlink', link: '/proc/self/fd/2' },
  ];
}

/** Checks the rootfs before anything is created, so the error comes first and cheaply. */
function checkRootfs(path: string): void {
  let st;
  try {
    st = statSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new TsboxError({
      step: 'open_rootfs',
      errno: Math.abs((err as NodeJS.ErrnoException).errno ?? 0),
      path,
      detail: code === 'ENOENT' ? 'the rootfs directory does not exist' : `the rootfs cannot be read (${code})`,
      hint: code === 'ENOENT' ? 'pass an existing directory holding a root filesystem with --rootfs' : 'the rootfs must be readable by the user running tsbox',
    });
  }
  if (!st.isDirectory()) {
    throw new TsboxError({
      step: 'open_rootfs',
      errno: 20,
      path,
      detail: 'the rootfs is not a directory',
      hint: 'pass a directory holding a root filesystem (an unpacked image), not a file or archive',
    });
  }
}

export interface PlanContext {
  hostname: string;
  traceT0Ns: bigint;
  planVersion: number;
}

export function buildPlan(command: string[], o: ResolvedOptions, ctx: PlanContext): Plan {
  const hostRoot = o.rootfs === undefined;
  const rootfs = hostRoot ? '/' : resolve(o.rootfs!);
  if (!hostRoot) checkRootfs(rootfs);
  const mounts = systemMounts();
  if (hostRoot) {
    // The host's root is read-only: writable scratch space, and the host's /run
    // (its sockets) hidden.
    mounts.push(fs('/tmp', 'tmpfs', 'mode=1777', { nosuid: true, nodev: true }));
    mounts.push(fs('/run', 'tmpfs', 'mode=755', { nosuid: true, nodev: true }));
  }
  const env = new Map<string, string>([
    ['PATH', DEFAULT_PATH],
    ['HOSTNAME', ctx.hostname],
    ['HOME', '/root'],
  ]);
  for (const [k, v] of Object.entries(o.env ?? {})) env.set(k, v);
  return {
    version: ctx.planVersion,
    argv: command,
    env: [...env].map(([k, v]) => `${k}=${v}`),
    cwd: o.cwd,
    hostname: ctx.hostname,
    namespaces: [...ALL_NAMESPACES],
    rootfs: { kind: 'path', path: rootfs, readonly: hostRoot },
    mounts,
    init: o.init,
    user: { uid: 0, gid: 0, additionalGids: [] },
    capabilities: [...DEFAULT_CAPABILITIES],
    noNewPrivileges: true,
    rlimits: [],
    trace: o.trace,
    traceT0Ns: Number(ctx.traceT0Ns),
    parentPid: process.pid,
  };
}
