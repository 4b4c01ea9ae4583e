// ts/suggest.ts: the "did you mean" of unknown flags and option keys.
import { describe, expect, it } from 'vitest';

import { closest, editDistance } from '../../ts/suggest.js';

describe('closest', () => {
  it('finds a typo: a letter more, less, changed, or two swapped', () => {
    const names = ['rootfs', 'memory', 'memory-swap', 'nofile', 'nproc', 'hostname'];
    expect(closest('rootfss', names)).toBe('rootfs');
    expect(closest('memroy', names)).toBe('memory');
    expect(closest('nofle', names)).toBe('nofile');
    expect(closest('HOSTNAME', names)).toBe('hostname');
  });

  it('suggests nothing far off, and nothing for a name that is right', () => {
    expect(closest('bogus', ['rootfs', 'memory'])).toBeUndefined();
    expect(closest('ab', ['cd'])).toBeUndefined();
    expect(closest('memory', ['memory'])).toBeUndefined();
    expect(closest('x', [])).toBeUndefined();
  });

  it('counts a swap of two neighbours as one edit', () => {
    expect(editDistance('memroy', 'memory')).toBe(1);
    expect(editDistance('', 'abc')).toBe(3);
    expect(editDistance('kitten', 'sitting')).toBe(3);
  });
});
