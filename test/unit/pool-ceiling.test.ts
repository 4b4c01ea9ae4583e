// A call's limits against the pool's (ts/pool/ceiling.ts): a call may only
// tighten them, and the pool may set a limit by its option or raw through
// `unified`, which is written after the options and over them. A call's
// memory, pidsLimit or cpus replaces memory.max, pids.max or cpu.max, so a
// ceiling set in `unified` is one too (the hostile review's finding: it was
// compared with the pool's option of the same name only).
import { describe, expect, it } from 'vitest';

import { parseRunInput, type RunOptions } from '../../ts/config/schema.js';
import { TsboxError } from '../../ts/errors.js';
import { checkCallLimit } from '../../ts/pool/ceiling.js';

const pool = (o: RunOptions) => parseRunInput(['/'], o).options;
const MiB = 1024 * 1024;

/** The error checkCallLimit throws, or null. */
function refusal(f: () => unknown): TsboxError | null {
  try {
    f();
    return null;
  } catch (err) {
    expect(err).toBeInstanceOf(TsboxError);
    return err as TsboxError;
  }
}

describe("a call's limit against the pool's", () => {
  it("is refused above the pool's option of the same name, and written only when it differs from it", () => {
    const p = pool({ memory: '128m', pidsLimit: 100, cpus: 1 });
    expect(checkCallLimit('memory', 64 * MiB, p)).toBe(true);
    expect(checkCallLimit('memory', 128 * MiB, p)).toBe(false);
    expect(refusal(() => checkCallLimit('memory', 256 * MiB, p))).toMatchObject({ step: 'config', path: 'memory', message: expect.stringContaining("looser than the pool's memory") });
    expect(checkCallLimit('pidsLimit', 20, p)).toBe(true);
    expect(refusal(() => checkCallLimit('pidsLimit', -1, p))).toMatchObject({ path: 'pidsLimit', message: expect.stringContaining(': no limit is looser') });
    expect(checkCallLimit('cpus', 0.5, p)).toBe(true);
    expect(refusal(() => checkCallLimit('cpus', 1.5, p))).toMatchObject({ path: 'cpus' });
    // The pool sets none: any.
    expect(checkCallLimit('memory', 64 * MiB, pool({}))).toBe(true);
    expect(checkCallLimit('pidsLimit', 10 ** 6, pool({ pidsLimit: -1 }))).toBe(true);
  });

  it("is refused above what the pool's unified sets for the same file, naming the call's option and the pool's key", () => {
    for (const [p, key, looser, tighter] of [
      [pool({ unified: { 'memory.max': '100M' } }), 'memory', 200 * MiB, 50 * MiB],
      [pool({ unified: { 'memory.max': '104857600' } }), 'memory', 100 * MiB + 1, 100 * MiB],
      [pool({ unified: { 'memory.max': ' 1g\n' } }), 'memory', 2048 * MiB, 1024 * MiB],
      [pool({ unified: { 'pids.max': '100' } }), 'pidsLimit', 1000, 100],
      [pool({ pidsLimit: -1, unified: { 'pids.max': '100' } }), 'pidsLimit', -1, 1],
      [pool({ unified: { 'cpu.max': '50000 100000' } }), 'cpus', 2, 0.5],
      [pool({ unified: { 'cpu.max': '25000 50000' } }), 'cpus', 0.51, 0.5],
      // No period: the cgroup keeps the one the pool's options wrote.
      [pool({ cpuPeriod: 200_000, unified: { 'cpu.max': '100000' } }), 'cpus', 0.51, 0.5],
      [pool({ unified: { 'cpu.max': '50000' } }), 'cpus', 0.6, 0.5],
    ] as const) {
      const file = Object.keys(p.unified!)[0]!;
      const err = refusal(() => checkCallLimit(key, looser, p));
      expect(err, `${key} ${looser} over ${file}`).toMatchObject({ step: 'config', path: key });
      expect(err!.message).toContain(`the pool's unified["${file}"]`);
      expect(err!.message).toContain('a call may only tighten');
      // What unified wrote is over the pool's option: the call's value is written even when it equals the option.
      expect(checkCallLimit(key, tighter, p), `${key} ${tighter} under ${file}`).toBe(true);
    }
  });

  it('is checked against both when the pool sets the option and unified, whichever is lower', () => {
    const p = pool({ memory: '64m', pidsLimit: 500, unified: { 'memory.max': '128M', 'pids.max': '50' } });
    expect(refusal(() => checkCallLimit('memory', 100 * MiB, p))).toMatchObject({ path: 'memory', message: expect.stringContaining("the pool's memory (") });
    expect(refusal(() => checkCallLimit('pidsLimit', 100, p))).toMatchObject({ path: 'pidsLimit', message: expect.stringContaining('unified["pids.max"]') });
    // Equal to the option, but unified overrode it in the cgroup: written.
    expect(checkCallLimit('memory', 64 * MiB, p)).toBe(true);
    expect(checkCallLimit('pidsLimit', 50, p)).toBe(true);
  });

  it("'max' in unified is no ceiling, and files of other limits leave the call's alone", () => {
    expect(checkCallLimit('memory', 10 ** 12, pool({ unified: { 'memory.max': 'max' } }))).toBe(true);
    expect(checkCallLimit('pidsLimit', -1, pool({ pidsLimit: -1, unified: { 'pids.max': 'max' } }))).toBe(true);
    expect(checkCallLimit('cpus', 64, pool({ unified: { 'cpu.max': 'max 100000' } }))).toBe(true);
    // memory.high throttles and the call does not write it: it stays in force.
    expect(checkCallLimit('memory', 10 ** 12, pool({ unified: { 'memory.high': '10M', 'cpu.weight': '50' } }))).toBe(true);
  });

  it("refuses a call's limit when unified's value is in a form tsbox does not read as the kernel does, rather than guess", () => {
    for (const [file, raw, key, value] of [
      // The kernel reads these as octal or hex (base 0).
      ['memory.max', '0100M', 'memory', 64 * MiB],
      ['memory.max', '0x6400000', 'memory', 64 * MiB],
      ['pids.max', '010', 'pidsLimit', 5],
      ['pids.max', '0x10', 'pidsLimit', 5],
      // Not one of the file's forms.
      ['memory.max', '1.5G', 'memory', 64 * MiB],
      ['cpu.max', '50000 100000 1', 'cpus', 0.1],
      ['cpu.max', '50000x 100000', 'cpus', 0.1],
      ['cpu.max', '50000 0', 'cpus', 0.1],
    ] as const) {
      const err = refusal(() => checkCallLimit(key, value, pool({ unified: { [file]: raw } })));
      expect(err, `${file}=${raw}`).toMatchObject({ step: 'config', path: key });
      expect(err!.message).toContain(`cannot be checked against the pool's unified["${file}"] (${JSON.stringify(raw)})`);
      expect(err!.hint).toContain(`unified["${file}"]`);
    }
  });
});
