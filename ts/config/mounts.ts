/**
 * Volumes, tmpfs mounts and Docker's `--mount` syntax, parsed into one shape.
 * Strings are parsed inside the schema (as zod transforms), so a bad one is
 * reported with its JSON path, e.g. `volumes[1]: unknown option "rox"`.
 */
import { posix } from 'node:path';

import * as z from 'zod/mini';

import { sizeInBytes } from '../cgroups/limits.js';
import { once } from './lazy.js';
import './locale.js';

/** A host path bound into the container. */
export interface BindVolume {
  type: 'bind';
  /** Host path (absolute after resolution). */
  source: string;
  /** Absolute path inside the container. */
  target: string;
  readonly: boolean;
  /**
   * An idmapped bind (`:idmap`): the source's ids are shifted into the
   * container's range, so host root's files are container root's and files
   * container root makes there are host root's. Without it (the default) the
   * container's ids are its own unprivileged host ids on the volume too.
   */
  idmap: boolean;
}

/** A fresh tmpfs inside the container. */
export interface TmpfsVolume {
  type: 'tmpfs';
  target: string;
  /** Bytes; omitted means the kernel's default (half of RAM). */
  size?: number;
  /** Octal mode of the tmpfs root, e.g. 0o1777. */
  mode?: number;
  readonly: boolean;
}

export type Volume = BindVolume | TmpfsVolume;

const target = once(() =>
  z.string().check(
    z.minLength(1),
    z.refine((p) => p.startsWith('/'), { message: 'the container path must be absolute (start with /)' }),
    z.refine((p) => !p.includes('\0'), { message: 'must not contain a NUL byte' }),
    // However it is written (`//`, `/.`, `/a/..`): a mount there would
    // replace the container's whole root. The helper also refuses a target
    // that resolves to the root inside the rootfs (a symlink to /), which
    // no spelling shows.
    z.refine((p) => posix.normalize(p) !== '/', { message: 'the container path cannot be / itself (nor //, /. or /a/.., which are /): a mount there would replace the whole root' }),
  ),
);

/** A size as every size in tsbox is read (Docker's units and the IEC ones: 64m, 64MiB, 1.5g). */
export function parseSize(s: string): number | undefined {
  return sizeInBytes(s);
}

function parseMode(s: string): number | undefined {
  return /^[0-7]{3,4}$/.test(s) ? parseInt(s, 8) : undefined;
}

/** What a transform is given: the value and the issues found so far. */
type Ctx = z.core.ParsePayload;
const bad = (ctx: Ctx, message: string) => {
  ctx.issues.push({ code: 'custom', message, input: ctx.value });
  return z.NEVER;
};

/** `HOST:CONTAINER[:ro|rw][,idmap]` (Docker's -v; `idmap` as podman's). */
export function parseVolume(spec: string, ctx: Ctx): BindVolume {
  const parts = spec.split(':');
  if (parts.length < 2 || parts.length > 3) return bad(ctx, `"${spec}" is not HOST:CONTAINER[:OPTIONS]`);
  const [source, tgt, opts = ''] = parts as [string, string, string?];
  if (!source) return bad(ctx, `"${spec}" has an empty host path`);
  let readonly = false;
  let idmap = false;
  for (const o of opts.split(',').filter(Boolean)) {
    if (o === 'ro') readonly = true;
    else if (o === 'rw') readonly = false;
    else if (o === 'idmap') idmap = true;
    else return bad(ctx, `"${spec}": unknown option "${o}" (use ro, rw or idmap)`);
  }
  const t = target().safeParse(tgt);
  if (!t.success) return bad(ctx, `"${spec}": ${t.error.issues[0]!.message}`);
  return { type: 'bind', source, target: tgt, readonly, idmap };
}

/** `PATH[:size=64m,mode=1777,ro]` (Docker's --tmpfs). */
export function parseTmpfs(spec: string, ctx: Ctx): TmpfsVolume {
  const colon = spec.indexOf(':');
  const tgt = colon < 0 ? spec : spec.slice(0, colon);
  const t = target().safeParse(tgt);
  if (!t.success) return bad(ctx, `"${spec}": ${t.error.issues[0]!.message}`);
  const out: TmpfsVolume = { type: 'tmpfs', target: tgt, readonly: false };
  for (const o of colon < 0 ? [] : spec.slice(colon + 1).split(',').filter(Boolean)) {
    const [k, v] = o.split('=', 2) as [string, string?];
    if (k === 'size' && v !== undefined) {
      const n = parseSize(v);
      if (n === undefined) return bad(ctx, `"${spec}": size "${v}" is not a size such as 64m, 64MiB or 1g`);
      out.size = n;
    } else if (k === 'mode' && v !== undefined) {
      const n = parseMode(v);
      if (n === undefined) return bad(ctx, `"${spec}": mode "${v}" is not an octal mode such as 1777`);
      out.mode = n;
    } else if (k === 'ro' && v === undefined) out.readonly = true;
    else if (k === 'rw' && v === undefined) out.readonly = false;
    else return bad(ctx, `"${spec}": unknown option "${o}" (use size=, mode=, ro or rw)`);
  }
  return out;
}

/** Docker's `--mount type=bind|tmpfs,source=..,target=..,readonly,...`. */
export function parseMountSpec(spec: string, ctx: Ctx): Volume {
  const kv = new Map<string, string | true>();
  for (const field of spec.split(',').filter(Boolean)) {
    const eq = field.indexOf('=');
    kv.set(eq < 0 ? field : field.slice(0, eq), eq < 0 ? true : field.slice(eq + 1));
  }
  const get = (...names: string[]) => names.map((n) => kv.get(n)).find((v) => v !== undefined);
  const type = get('type') ?? 'bind';
  const tgt = get('target', 'destination', 'dst');
  if (typeof tgt !== 'string') return bad(ctx, `"${spec}" has no target= (the path inside the container)`);
  const t = target().safeParse(tgt);
  if (!t.success) return bad(ctx, `"${spec}": ${t.error.issues[0]!.message}`);
  const ro = get('readonly', 'ro');
  const readonly = ro === true || ro === 'true' || ro === '1';
  if (ro !== undefined && !readonly && ro !== 'false' && ro !== '0') return bad(ctx, `"${spec}": readonly takes true or false, not "${String(ro)}"`);
  const known = type === 'bind' ? ['type', 'source', 'src', 'target', 'destination', 'dst', 'readonly', 'ro', 'idmap'] : ['type', 'target', 'destination', 'dst', 'readonly', 'ro', 'tmpfs-size', 'tmpfs-mode'];
  for (const k of kv.keys()) if (!known.includes(k)) return bad(ctx, `"${spec}": unknown field "${k}" for type=${String(type)}`);
  if (type === 'bind') {
    const source = get('source', 'src');
    if (typeof source !== 'string' || !source) return bad(ctx, `"${spec}" has no source= (the host path)`);
    const idmap = get('idmap');
    if (idmap !== undefined && idmap !== true) return bad(ctx, `"${spec}": idmap takes no value`);
    return { type: 'bind', source, target: tgt, readonly, idmap: idmap === true };
  }
  if (type === 'tmpfs') {
    const out: TmpfsVolume = { type: 'tmpfs', target: tgt, readonly };
    const size = get('tmpfs-size');
    if (size !== undefined) {
      const n = typeof size === 'string' ? parseSize(size) : undefined;
      if (n === undefined) return bad(ctx, `"${spec}": tmpfs-size "${String(size)}" is not a size such as 64m`);
      out.size = n;
    }
    const mode = get('tmpfs-mode');
    if (mode !== undefined) {
      const n = typeof mode === 'string' ? parseMode(mode) : undefined;
      if (n === undefined) return bad(ctx, `"${spec}": tmpfs-mode "${String(mode)}" is not an octal mode such as 1777`);
      out.mode = n;
    }
    return out;
  }
  return bad(ctx, `"${spec}": type=${String(type)} is not supported (use bind or tmpfs)`);
}

// Built on first use (ts/config/lazy.ts): a run without volumes or mounts never builds them.
const bindObject = once(() =>
  z.strictObject({
    type: z._default(z.literal('bind'), 'bind'),
    source: z.string().check(z.minLength(1)),
    target: target(),
    readonly: z._default(z.boolean(), false),
    idmap: z._default(z.boolean(), false),
  }),
);
const tmpfsObject = once(() =>
  z.strictObject({
    type: z.literal('tmpfs'),
    target: target(),
    size: z.optional(z.number().check(z.int(), z.positive())),
    mode: z.optional(z.number().check(z.int(), z.gte(0), z.lte(0o7777))),
    readonly: z._default(z.boolean(), false),
  }),
);

/** A string parsed by `parse` inside the schema, its problems reported as issues. */
const spec = <T>(parse: (spec: string, ctx: Ctx) => T) => z.pipe(z.string(), z.transform(parse));

/** `volumes`: `HOST:CONTAINER[:ro]` strings or `{ source, target, readonly }`. */
export const volumeSchema = once(() => z.union([spec(parseVolume), bindObject()]));
/** `tmpfs`: `PATH[:size=..,mode=..]` strings or `{ target, size, mode }`. */
export const tmpfsSchema = once(() => z.union([spec(parseTmpfs), z.extend(tmpfsObject(), { type: z._default(z.literal('tmpfs'), 'tmpfs') })]));
/** `mounts`: Docker `--mount` strings or objects of either kind. */
export const mountSchema = once(() => z.union([spec(parseMountSpec), z.discriminatedUnion('type', [z.extend(bindObject(), { type: z.literal('bind') }), tmpfsObject()])]));

/** OCI / Docker default masked paths. */
export const DEFAULT_MASKED_PATHS: readonly string[] = [
  '/proc/acpi',
  '/proc/asound',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/proc/scsi',
  '/sys/firmware',
  '/sys/devices/virtual/powercap',
];

/** OCI / Docker default read-only paths. */
export const DEFAULT_READONLY_PATHS: readonly string[] = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];
