/**
 * The pool's limits as the ceiling of a call's. A call may set `memory`,
 * `pidsLimit` and `cpus`, each written to its sandbox's cgroup over what
 * the pool wrote (updateCgroup), so each may only tighten the pool's.
 * The pool may set the same cgroup file twice: by the option of the same
 * name, and raw through `unified` (memory.max, pids.max, cpu.max), written
 * after the options and over them. A call's limit must be within both: a
 * check against the option alone would let a call raise a ceiling that
 * `unified` set. A `unified` value in a form the kernel takes but tsbox
 * does not read exactly (octal, hex, a quota without its period) refuses
 * the call's limit rather than guess.
 */
import { cpusToQuota, DEFAULT_CPU_PERIOD } from '../cgroups/limits.js';
import type { ResolvedOptions } from '../config/schema.js';
import { TsboxError } from '../errors.js';

/** Limits a call may lower: written to its sandbox's cgroup before the process starts. */
export const TIGHTER_LIMITS = ['memory', 'pidsLimit', 'cpus'] as const;
export type TighterLimit = (typeof TIGHTER_LIMITS)[number];

/** The cgroup v2 file each of them writes; `unified` is v2's only, so v1's files need no entry. */
const UNIFIED_FILE = { memory: 'memory.max', pidsLimit: 'pids.max', cpus: 'cpu.max' } as const satisfies Record<TighterLimit, string>;

/** How each file's value must be written for tsbox to read it (in the errors). */
const UNIFIED_FORM = {
  memory: '"max" or bytes in decimal, with an optional K, M, G, T, P or E (100M)',
  pidsLimit: '"max" or a decimal number',
  cpus: '"max PERIOD" or "QUOTA PERIOD" in decimal microseconds (50000 100000)',
} as const satisfies Record<TighterLimit, string>;

/**
 * A limit as a rate, `amount / per`: bytes or processes per 1, or CPU
 * quota per period (µs). BigInt: a raw memory.max may be beyond 2^53, and
 * a quota times a period may be too.
 */
interface Rate {
  amount: bigint;
  per: bigint;
}

/** One limit the pool sets: where (for the error), as written, and its value (null: none). */
interface Ceiling {
  source: string;
  shown: string;
  rate: Rate | null;
}

/**
 * Checks a call's limit `key` = `value` (parsed: bytes, processes with -1
 * for none, CPUs) against every limit of `pool` on the same cgroup file.
 * Throws a TsboxError naming the call's option and the pool's setting when
 * the call's is looser, or when the pool's raw value cannot be read.
 * Returns whether the value must be written: not when it is the pool's own
 * option's and no `unified` value overrode that option in the cgroup.
 */
export function checkCallLimit(key: TighterLimit, value: number, pool: ResolvedOptions): boolean {
  const call = rateOf(key, value);
  const raw = pool.unified?.[UNIFIED_FILE[key]];
  const ceilings = [optionCeiling(key, pool)];
  if (raw !== undefined) ceilings.push(unifiedCeiling(key, raw, pool));
  for (const c of ceilings) {
    if (c.rate === null) continue;
    if (call === null || call.amount * c.rate.per > c.rate.amount * call.per) {
      const given = call === null ? 'no limit' : String(value);
      const hint = c.source.startsWith('unified') ? `create a pool with a looser ${c.source} (it is written after the pool's ${key}, over it)` : 'create a pool with the looser limit';
      throw configError(key, `${given} is looser than the pool's ${c.source} (${c.shown}): a call may only tighten the pool's limits`, hint);
    }
  }
  return raw !== undefined || value !== pool[key];
}

/** `value` of the call's `key` as a rate; null for none (pidsLimit -1). */
function rateOf(key: TighterLimit, value: number): Rate | null {
  if (key === 'pidsLimit' && value === -1) return null;
  if (key === 'cpus') {
    // The quota the call's cpus is written as (cpu.ts), rounded as it is.
    const { quota, period } = cpusToQuota(value);
    return { amount: BigInt(quota), per: BigInt(period) };
  }
  return { amount: BigInt(value), per: 1n };
}

/** The pool's option of the same name: absent (memory, cpus) or -1 (pidsLimit) is none. */
function optionCeiling(key: TighterLimit, pool: ResolvedOptions): Ceiling {
  const v = pool[key];
  return { source: key, shown: String(v ?? 'none'), rate: v === undefined ? null : rateOf(key, v) };
}

/** The pool's `unified[file]`, read as the kernel reads it; an unclear form throws. */
function unifiedCeiling(key: TighterLimit, raw: string, pool: ResolvedOptions): Ceiling {
  const file = UNIFIED_FILE[key];
  const source = `unified["${file}"]`;
  const shown = JSON.stringify(raw);
  // The kernel strips the whitespace around each of these files' values.
  const text = raw.trim();
  let rate: Rate | null | undefined;
  if (key === 'memory') {
    // memparse: base 0 (a leading 0 is octal, 0x hex), then one binary suffix.
    const m = /^(0|[1-9]\d*)([KMGTPE]?)$/i.exec(text);
    if (text === 'max') rate = null;
    else if (m) rate = { amount: BigInt(m[1]!) << BigInt(10 * ' KMGTPE'.indexOf((m[2] || ' ').toUpperCase())), per: 1n };
  } else if (key === 'pidsLimit') {
    // kstrtoll base 0: the same octal and hex.
    if (text === 'max') rate = null;
    else if (/^(0|[1-9]\d*)$/.test(text)) rate = { amount: BigInt(text), per: 1n };
  } else {
    // "QUOTA|max [PERIOD]": without a period the cgroup's stays, which is
    // the one the pool's own options wrote, or the kernel's default.
    const [quota, period, ...rest] = text.split(/\s+/);
    const per = period === undefined ? BigInt(pool.cpuPeriod ?? DEFAULT_CPU_PERIOD) : /^\d+$/.test(period) ? BigInt(period) : 0n;
    if (rest.length === 0 && per > 0n) {
      if (quota === 'max') rate = null;
      else if (quota !== undefined && /^\d+$/.test(quota)) rate = { amount: BigInt(quota), per };
    }
  }
  if (rate === undefined) {
    throw configError(
      key,
      `cannot be checked against the pool's ${source} (${shown}): a call's ${key} is written to ${file} over the pool's value, so it must be no looser, and tsbox reads ${file} only as ${UNIFIED_FORM[key]}`,
      `write the pool's ${source} in that form, or leave the call's ${key} out`,
    );
  }
  return { source, shown, rate };
}

/** A pool option or a call's option that cannot be: step `config`, naming it. */
export function configError(path: string, detail: string, hint: string | null): TsboxError {
  return new TsboxError({ step: 'config', errno: 0, path, detail, hint });
}
