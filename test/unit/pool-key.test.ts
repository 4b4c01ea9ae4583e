// The key a pool keeps a call's checked options and process template under
// (ts/pool, Base.processes): two calls share one only when their options
// are the same plain JSON, so that no call passes as another's. The call
// is parsed from the copy the key is made of, so the key must be exactly
// that copy's JSON, whatever the caller's objects do when read.
import { describe, expect, it } from 'vitest';

import { callOptions } from '../../ts/pool/index.js';

const key = (given: Record<string, unknown>) => callOptions(given)?.key ?? null;

describe("a pool's key for a call's options", () => {
  it('is the same for the same options, and differs when any value does', () => {
    const a = { env: { A: '1' }, cwd: '/tmp', user: '1000:1000' };
    expect(key(a)).toBe(key({ env: { A: '1' }, cwd: '/tmp', user: '1000:1000' }));
    expect(key(a)).not.toBe(key({ env: { A: '2' }, cwd: '/tmp', user: '1000:1000' }));
    expect(key({})).not.toBe(key({ env: {} }));
    // An option left undefined is one not given.
    expect(key({ cwd: undefined })).toBe(key({}));
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
      // An own __proto__ key, which an assignment would turn into a prototype.
      { env: JSON.parse('{"__proto__": {"A": "1"}}') as unknown },
    ]) {
      expect(key(given as Record<string, unknown>), String(Object.keys(given))).toBeNull();
    }
  });

  it('is never the key of other options than those parsed: a toJSON that hides a capability is not the key of none', () => {
    // The hostile review's proof: JSON.stringify ran the array's toJSON, so
    // this call was kept under '{}' and later calls without options got
    // CAP_SYS_ADMIN.
    const capAdd = Object.assign(['CAP_SYS_ADMIN'], { toJSON: () => undefined });
    expect(key({ capAdd })).not.toBe(key({}));
    expect(key({ capAdd })).toBeNull();
    // A toJSON on a plain object is a function among its values.
    expect(key({ env: { A: '1', toJSON: () => ({}) } })).toBeNull();
  });

  it('reads each value once: a getter that answers otherwise the second time is parsed as it answered for the key', () => {
    let reads = 0;
    const env = {
      get A() {
        reads++;
        return reads === 1 ? 'harmless' : 'hostile';
      },
    };
    const call = callOptions({ env, capAdd: [] })!;
    expect(reads).toBe(1);
    expect(call.key).toBe(key({ env: { A: 'harmless' }, capAdd: [] }));
    // What the pool parses: the copy, plain, with what the key says.
    expect(call.options).toEqual({ env: { A: 'harmless' }, capAdd: [] });
    expect(JSON.stringify(call.options)).toBe(call.key);
    expect(Object.getOwnPropertyDescriptor(call.options.env, 'A')).toMatchObject({ value: 'harmless', writable: true });
  });

  it('describes only what it copies: properties JSON and zod could read apart (non-enumerable, symbols) are in neither', () => {
    const env: Record<PropertyKey, unknown> = { A: '1' };
    Object.defineProperty(env, 'HIDDEN', { value: 'x', enumerable: false });
    env[Symbol('s')] = 'y';
    const call = callOptions({ env })!;
    expect(call.key).toBe(key({ env: { A: '1' } }));
    expect(Reflect.ownKeys(call.options.env as object)).toEqual(['A']);
  });
});
