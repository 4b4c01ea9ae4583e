/** `tsbox kill -s`: names in any case, with or without SIG, and numbers the kernel accepts. */
import { describe, expect, it } from 'vitest';

import { parseSignal } from '../../ts/cli/kill.js';

describe('parseSignal', () => {
  it('reads TERM, sigterm, SIGKILL and numbers', () => {
    expect(parseSignal('TERM')).toBe(15);
    expect(parseSignal('sigterm')).toBe(15);
    expect(parseSignal('SIGKILL')).toBe(9);
    expect(parseSignal('10')).toBe(10);
    expect(parseSignal('64')).toBe(64);
  });

  it('refuses what no signal is, naming the option', () => {
    expect(() => parseSignal('NOPE')).toThrow(/--signal.*unknown signal "NOPE"/);
    expect(() => parseSignal('0')).toThrow(/--signal.*0 is not a signal number/);
    expect(() => parseSignal('999')).toThrow(/--signal.*999 is not a signal number/);
  });
});
