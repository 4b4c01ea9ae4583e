/**
 * An OCI bundle's `config.json` (runtime-spec 1.2, Linux), read and checked.
 * Unknown properties are ignored, as the spec requires; a value that is
 * wrong, or a field tsbox does not implement, is an error naming its JSON
 * path (`linux.namespaces[2].path`). What the fields mean for the container
 * is ts/oci/plan.ts's.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import * as z from 'zod/mini';

import { TsboxError, fromSystemError } from '../errors.js';
import '../config/locale.js';

/** The runtime-spec versions tsbox reads: 1.0.0 up to this one. */
export const OCI_VERSION_MAX = '1.2.0';
export const OCI_VERSION_MIN = '1.0.0';

/** A u64 that JSON carried beyond 2^53: kept exact as a BigInt. */
const u64 = z.union([z.number().check(z.int(), z.gte(0)), z.bigint().check(z.gte(0n))]);
const i64 = z.union([z.number().check(z.int()), z.bigint()]);
const strings = z.nullish(z.array(z.string()));

const idMapping = z.looseObject({ containerID: z.number().check(z.int(), z.gte(0)), hostID: z.number().check(z.int(), z.gte(0)), size: z.number().check(z.int(), z.gte(1)) });

const hook = z.looseObject({
  path: z.string().check(z.refine((p) => p.startsWith('/'), { message: 'must be an absolute path' })),
  args: strings,
  env: strings,
  timeout: z.nullish(z.number().check(z.int(), z.gte(1, { message: 'must be a positive number of seconds' }))),
});
export type OciHook = z.output<typeof hook>;

const hookList = z.nullish(z.array(hook));

const HOOK_NAMES = ['prestart', 'createRuntime', 'createContainer', 'startContainer', 'poststart', 'poststop'] as const;
export type HookName = (typeof HOOK_NAMES)[number];

const capabilitySets = z.looseObject({ bounding: strings, effective: strings, inheritable: strings, permitted: strings, ambient: strings });

const processSchema = z.looseObject({
  terminal: z.nullish(z.boolean()),
  consoleSize: z.nullish(z.looseObject({ height: z.number().check(z.int(), z.gte(0)), width: z.number().check(z.int(), z.gte(0)) })),
  user: z.looseObject({
    uid: z.number().check(z.int(), z.gte(0), z.lt(4294967295)),
    gid: z.number().check(z.int(), z.gte(0), z.lt(4294967295)),
    umask: z.nullish(z.number().check(z.int(), z.gte(0), z.lte(0o777))),
    additionalGids: z.nullish(z.array(z.number().check(z.int(), z.gte(0), z.lt(4294967295)))),
    username: z.nullish(z.string()),
  }),
  args: z.array(z.string()).check(z.minLength(1, { message: 'must hold the program to run (at least one element)' })),
  commandLine: z.nullish(z.string()),
  env: strings,
  cwd: z.string().check(z.refine((p) => p.startsWith('/'), { message: 'must be an absolute path' })),
  capabilities: z.nullish(capabilitySets),
  rlimits: z.nullish(z.array(z.looseObject({ type: z.string(), hard: u64, soft: u64 }))),
  noNewPrivileges: z.nullish(z.boolean()),
  apparmorProfile: z.nullish(z.string()),
  oomScoreAdj: z.nullish(z.number().check(z.int(), z.gte(-1000), z.lte(1000))),
  selinuxLabel: z.nullish(z.string()),
  ioPriority: z.nullish(
    z.looseObject({
      class: z.enum(['IOPRIO_CLASS_RT', 'IOPRIO_CLASS_BE', 'IOPRIO_CLASS_IDLE']),
      priority: z.nullish(z.number().check(z.int(), z.gte(0), z.lte(7))),
    }),
  ),
  scheduler: z.nullish(
    z.looseObject({
      policy: z.enum(['SCHED_OTHER', 'SCHED_FIFO', 'SCHED_RR', 'SCHED_BATCH', 'SCHED_ISO', 'SCHED_IDLE', 'SCHED_DEADLINE']),
      nice: z.nullish(z.number().check(z.int(), z.gte(-20), z.lte(19))),
      priority: z.nullish(z.number().check(z.int(), z.gte(0), z.lte(99))),
      flags: strings,
      runtime: z.nullish(u64),
      deadline: z.nullish(u64),
      period: z.nullish(u64),
    }),
  ),
  execCPUAffinity: z.nullish(z.unknown()),
});
export type OciProcess = z.output<typeof processSchema>;
/** An OCI `process` on its own: `exec --process FILE`. */
export const ociProcessSchema = processSchema;

const mountSchema = z.looseObject({
  destination: z.string().check(z.minLength(1)),
  type: z.nullish(z.string()),
  source: z.nullish(z.string()),
  options: strings,
  uidMappings: z.nullish(z.array(idMapping)),
  gidMappings: z.nullish(z.array(idMapping)),
});
export type OciMount = z.output<typeof mountSchema>;

const deviceRule = z.looseObject({
  allow: z.boolean(),
  type: z.nullish(z.string()),
  major: z.nullish(z.number()),
  minor: z.nullish(z.number()),
  access: z.nullish(z.string()),
});

const throttleList = z.nullish(z.array(z.looseObject({ major: i64, minor: i64, rate: u64 })));

const resourcesSchema = z.looseObject({
  devices: z.nullish(z.array(deviceRule)),
  memory: z.nullish(
    z.looseObject({
      limit: z.nullish(i64),
      reservation: z.nullish(i64),
      swap: z.nullish(i64),
      kernel: z.nullish(i64),
      kernelTCP: z.nullish(i64),
      swappiness: z.nullish(u64),
      disableOOMKiller: z.nullish(z.boolean()),
      useHierarchy: z.nullish(z.boolean()),
      checkBeforeUpdate: z.nullish(z.boolean()),
    }),
  ),
  cpu: z.nullish(
    z.looseObject({
      shares: z.nullish(u64),
      quota: z.nullish(i64),
      burst: z.nullish(u64),
      period: z.nullish(u64),
      realtimeRuntime: z.nullish(i64),
      realtimePeriod: z.nullish(u64),
      cpus: z.nullish(z.string()),
      mems: z.nullish(z.string()),
      idle: z.nullish(i64),
    }),
  ),
  pids: z.nullish(z.looseObject({ limit: z.nullish(i64) })),
  blockIO: z.nullish(
    z.looseObject({
      weight: z.nullish(z.number()),
      leafWeight: z.nullish(z.number()),
      weightDevice: z.nullish(z.array(z.looseObject({ major: i64, minor: i64, weight: z.nullish(z.number()), leafWeight: z.nullish(z.number()) }))),
      throttleReadBpsDevice: throttleList,
      throttleWriteBpsDevice: throttleList,
      throttleReadIOPSDevice: throttleList,
      throttleWriteIOPSDevice: throttleList,
    }),
  ),
  hugepageLimits: z.nullish(z.array(z.looseObject({ pageSize: z.string(), limit: u64 }))),
  network: z.nullish(z.looseObject({ classID: z.nullish(u64), priorities: z.nullish(z.array(z.looseObject({ name: z.string(), priority: u64 }))) })),
  rdma: z.nullish(z.unknown()),
  unified: z.nullish(z.record(z.string(), z.string())),
});
export type OciResources = z.output<typeof resourcesSchema>;
/** linux.resources on its own: `update --resources FILE`. */
export const ociResourcesSchema = resourcesSchema;

const NAMESPACE_TYPES = ['pid', 'network', 'mount', 'ipc', 'uts', 'user', 'cgroup', 'time'] as const;

const linuxSchema = z.looseObject({
  namespaces: z.nullish(z.array(z.looseObject({ type: z.enum(NAMESPACE_TYPES), path: z.nullish(z.string()) }))),
  uidMappings: z.nullish(z.array(idMapping)),
  gidMappings: z.nullish(z.array(idMapping)),
  timeOffsets: z.nullish(
    z.partialRecord(
      z.enum(['monotonic', 'boottime']),
      z.looseObject({ secs: z.nullish(z.number().check(z.int())), nanosecs: z.nullish(z.number().check(z.int(), z.gte(0), z.lt(1e9))) }),
    ),
  ),
  devices: z.nullish(
    z.array(
      z.looseObject({
        type: z.enum(['c', 'b', 'u', 'p']),
        path: z.string().check(z.refine((p) => p.startsWith('/'), { message: 'must be an absolute path' })),
        major: z.nullish(z.number().check(z.int(), z.gte(0), z.lte(0xfff))),
        minor: z.nullish(z.number().check(z.int(), z.gte(0), z.lte(0xfffff))),
        fileMode: z.nullish(z.number().check(z.int(), z.gte(0), z.lte(0o7777))),
        uid: z.nullish(z.number().check(z.int(), z.gte(0), z.lt(4294967295))),
        gid: z.nullish(z.number().check(z.int(), z.gte(0), z.lt(4294967295))),
      }),
    ),
  ),
  netDevices: z.nullish(z.unknown()),
  cgroupsPath: z.nullish(z.string()),
  resources: z.nullish(resourcesSchema),
  intelRdt: z.nullish(z.unknown()),
  memoryPolicy: z.nullish(z.looseObject({ mode: z.string(), nodes: z.nullish(z.string()), flags: z.nullish(z.array(z.string())) })),
  sysctl: z.nullish(z.record(z.string(), z.string())),
  seccomp: z.nullish(z.record(z.string(), z.unknown())),
  rootfsPropagation: z.nullish(z.enum(['private', 'rprivate', 'slave', 'rslave', 'shared', 'rshared', 'unbindable', 'runbindable'])),
  maskedPaths: strings,
  readonlyPaths: strings,
  mountLabel: z.nullish(z.string()),
  personality: z.nullish(z.looseObject({ domain: z.enum(['LINUX', 'LINUX32']), flags: strings })),
});
export type OciLinux = z.output<typeof linuxSchema>;

const semver = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$/;

export const ociSpecSchema = z.looseObject({
  ociVersion: z.string().check(
    z.regex(semver, { message: 'must be a SemVer 2.0.0 version, such as 1.2.0' }),
    z.refine((v) => !semver.test(v) || v.split('.')[0] === '1', { message: `tsbox reads runtime-spec 1.x (${OCI_VERSION_MIN} to ${OCI_VERSION_MAX})` }),
  ),
  root: z.nullish(z.looseObject({ path: z.string().check(z.minLength(1)), readonly: z.nullish(z.boolean()) })),
  mounts: z.nullish(z.array(mountSchema)),
  process: z.nullish(processSchema),
  hostname: z.nullish(z.string()),
  domainname: z.nullish(z.string()),
  hooks: z.nullish(
    z.looseObject({
      prestart: hookList,
      createRuntime: hookList,
      createContainer: hookList,
      startContainer: hookList,
      poststart: hookList,
      poststop: hookList,
    }),
  ),
  annotations: z.nullish(z.record(z.string(), z.string())),
  linux: z.nullish(linuxSchema),
});
export type OciSpec = z.output<typeof ociSpecSchema>;

/** One problem of a config.json: its JSON path and what is wrong. */
export interface SpecProblem {
  path: string;
  message: string;
}

/** The error for `problems` of the config file `file`: the first, and how many more. */
export function specError(file: string, problems: SpecProblem[]): TsboxError {
  const [first, ...rest] = problems;
  const more = rest.length > 0 ? ` (and ${rest.length} more: ${rest.map((p) => `${p.path}: ${p.message}`).join('; ')})` : '';
  return new TsboxError(
    { step: 'config', errno: 0, path: file, detail: `${first!.path}: ${first!.message}${more}`, hint: 'README, "As an OCI runtime", lists the fields tsbox supports; `tsbox spec` writes a config.json to start from' },
    { issues: problems },
  );
}

/** `process.capabilities.bounding[1]` from its keys. */
export function jsonPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) out += typeof key === 'number' ? `[${key}]` : out ? `.${String(key)}` : String(key);
  return out || '(config)';
}

/**
 * JSON.parse, keeping integers beyond 2^53 exact as BigInts (a seccomp
 * argument, an rlimit of 2^64-1): such literals are marked before parsing,
 * strings skipped whole so that nothing inside one is touched.
 */
export function parseJsonExact(text: string): unknown {
  const marked = text.replace(/"(?:[^"\\]|\\.)*"|-?\d{16,}(?![.eE\d])/g, (m) => (m.startsWith('"') || Number.isSafeInteger(Number(m)) ? m : `"\\u0000u64:${m}"`));
  return JSON.parse(marked, (_key, v: unknown) => (typeof v === 'string' && v.startsWith('\u0000u64:') ? BigInt(v.slice(5)) : v));
}

/** JSON.stringify, writing BigInts as the exact integers parseJsonExact reads back. */
export function stringifyExact(value: unknown): string {
  const big: string[] = [];
  const text = JSON.stringify(value, (_key, v: unknown) => {
    if (typeof v !== 'bigint') return v;
    big.push(v.toString());
    return `\u0000u64:${big.length - 1}`;
  });
  // A marker holds a NUL, which no string of a config has (the schema refuses none, but JSON escapes it).
  return text.replace(/"\\u0000u64:(\d+)"/g, (_m, i: string) => big[Number(i)]!);
}

/** Reads and checks `<bundle>/config.json`. */
export function loadSpec(bundle: string): { spec: OciSpec; file: string } {
  const file = join(bundle, 'config.json');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw fromSystemError('config', err, `read the bundle's config.json`, 'a bundle is a directory holding config.json (and usually rootfs/): `tsbox spec` writes one');
  }
  let raw: unknown;
  try {
    raw = parseJsonExact(text);
  } catch (err) {
    throw new TsboxError({ step: 'config', errno: 0, path: file, detail: `is not JSON: ${(err as Error).message}`, hint: null });
  }
  return { spec: checkSpec(raw, file), file };
}

/** Checks a parsed config.json; throws every problem with its JSON path. */
export function checkSpec(raw: unknown, file = 'config.json'): OciSpec {
  const r = ociSpecSchema.safeParse(raw);
  if (r.success) return r.data;
  const problems = r.error.issues.map((i) => ({ path: jsonPath(i.path), message: i.message }));
  throw specError(file, problems);
}

export { HOOK_NAMES, NAMESPACE_TYPES };
