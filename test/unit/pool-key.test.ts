// The key a pool keeps a call's checked options and process template under
// (ts/pool, Base.processes): two calls share one only when their options
// are the same plain JSON, so that no call passes as another's.
import { describe, expect, it } from 'vitest';

import { processKey } from '../../ts/pool/index.js';

describe("a pool's key for a call's options", () => {
  it('is the same for the same options, and differs when any value does', () => {
    const a = { env: { A: '1' }, cwd: '/tmp', user: '1000:1000' };
    expect(processKey(a)).toBe(processKey({ env: { A: '1' }, cwd: '/tmp', user: '1000:1000' }));
    expect(processKey(a)).not.toBe(processKey({ env: { A: '2' }, cwd: '/tmp', user: '1000:1000' }));
    expect(processKey({})).not.toBe(processKey({ env: {} }));
    // An option left undefined is one not given.
    expect(processKey({ cwd: undefined })).toBe(processKey({}));
  });

  it('is null for what JSON would drop or change, so that such a call is checked on its own', () => {
    for (const given of [
      { env: { A: () => '1' } },
      { ulimits: { nofile: Number.NaN } },
      { ulimits: { nofile: Infinity } },
      { memory: -0 },
      { groupAdd: [undefined] },
      { groupAdd: [, 'audio'] },
      { seccomp: { defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names: ['read'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 2n ** 60n, op: 'SCMP_CMP_EQ' }] }] } },
      { env: new Map([['A', '1']]) },
      { timeout: Symbol('t') },
    ]) {
      expect(processKey(given as Record<string, unknown>), String(Object.keys(given))).toBeNull();
    }
  });
});
