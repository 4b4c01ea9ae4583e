// ts/config/lazy.ts: an options schema that builds only the fields given must
// check exactly what the whole strict object checks: the same result, the
// same data (defaults in), the same issues with the same paths.
import { describe, expect, it } from 'vitest';
import * as z from 'zod/mini';

import { cgroupLimitsSchema } from '../../ts/cgroups/limits.js';
import { lazyStrictObject, NOT_TAKEN, optional, withDefault } from '../../ts/config/lazy.js';
import { runOptionFields, runOptionsSchema } from '../../ts/config/schema.js';

/** Options a caller may give, good and bad, one or many at once. */
const INPUTS: unknown[] = [
  {},
  { rootfs: '/srv/root' },
  { rootfs: '/srv/root', memory: '64m', cpus: 1.5, pidsLimit: 100 },
  { rootfs: '', hostname: 'bad_name', memory: 'lots' },
  { memory: '64m', memorySwap: '32m' },
  { memoryReservation: '1g', memory: '64m' },
  { cpus: 1, cpuQuota: 50_000 },
  { memory: 1024 },
  { readOnly: true, writableRootfs: true, rootfs: '/r' },
  { writableRootfs: true },
  { uidMap: ['0:100000:65536'] },
  { uidMap: ['0:100000:65536'], gidMap: [{ containerId: 0, hostId: 100000, size: 65536 }], userns: 'host' },
  { image: 'alpine', rootfs: '/r' },
  { pull: 'never' },
  { publish: ['8080:80'] },
  { network: 'bridge', publish: ['8080:80', 'nonsense'], allow: ['example.com:443'], capAdd: ['NET_RAW'] },
  { network: 'host', userns: 'host', capAdd: ['NET_ADMIN'] },
  { network: 'bogus' },
  { volumes: ['/a:/b:ro', { source: '/c', target: '/d' }], tmpfs: ['/t:size=1m'], mounts: ['type=bind,source=/x,target=/y'] },
  { volumes: ['/a:relative'], tmpfs: [{ target: '/' }] },
  { ulimits: { nofile: '1024:2048', nproc: 'unlimited', bogus: 1 } },
  { ulimits: { nofile: { soft: 10, hard: 5 } } },
  { env: { A: '1', 'B=C': 'x' }, cwd: 'relative', user: 'a:b:c', groupAdd: ['4294967295'] },
  { capAdd: ['NOT_A_CAP'], capDrop: ['ALL'], seccomp: '' },
  { seccomp: { defaultAction: 'SCMP_ACT_ALLOW' } },
  { stdio: ['pipe', 'inherit', 'nope'], tty: 'yes', ttySize: { cols: 0, rows: 10 } },
  { rootfs: '/r', rootfss: '/typo', memroy: '1g' },
  { rootfs: undefined, memory: undefined, hostname: 'ok', init: undefined },
  { undefinedUnknown: undefined },
  // Keys zod reads through the prototype (for...in), one given as undefined beside them.
  Object.assign(Object.create({ rootfs: '/inherited', bogus: 1 }) as object, { hostname: undefined, init: false }),
  // Options given as undefined: kept as zod keeps them (an optional one stays, undefined; a default applies).
  { rootfs: undefined, cwd: undefined, memory: undefined, capDrop: undefined },
  // An own __proto__ key (JSON.parse makes one), beside an undefined option.
  { ...(JSON.parse('{"__proto__":"x"}') as object), hostname: undefined },
  { ...(JSON.parse('{"__proto__":null,"rootfs":"/r"}') as object), hostname: undefined },
  { ...(JSON.parse('{"__proto__":{"capAdd":["SYS_ADMIN"]}}') as object), hostname: undefined },
  // Getters, read by zod, and an option that is not enumerable.
  new (class {
    get readOnly() {
      return true;
    }
    get capDrop() {
      return ['ALL'];
    }
    hostname = undefined;
  })(),
  Object.defineProperty({ hostname: undefined }, 'seccomp', { value: 'unconfined', enumerable: false }),
  // env, which a cheap check takes as it is when its schema would (acceptEnv), and leaves to the schema otherwise.
  { env: { A: '1', B: '', PATH: '/usr/bin:/bin' } },
  { env: {}, rootfs: '/r' },
  { env: { b: '1', 10: 'x', 2: 'y', a: 'z' } },
  { env: { A: 'x\0y' } },
  { env: { '': 'x' } },
  { env: { 'A\0B': 'x' } },
  { env: { A: 1 } },
  { env: ['A=1'] },
  { env: 'A=1' },
  { env: null },
  { env: undefined, rootfs: '/r' },
  { env: Object.assign(Object.create(null) as object, { A: '1' }) },
  { env: JSON.parse('{"__proto__":"x","A":"1"}') as object },
  { env: Object.defineProperty({ B: '2' }, 'A', { get: () => '1', enumerable: true }) },
  { env: Object.defineProperty({ B: '2' }, 'A', { value: '1', enumerable: false }) },
  { env: { [Symbol('s')]: 'x', A: '1' } },
  { env: new (class {
    A = '1';
  })() },
  new (class {
    get env() {
      return { A: '1' };
    }
  })(),
  Object.create({ env: { A: '1' } }) as object,
  { env: { 'A=B': 'x' } },
  { env: { constructor: 'x', hasOwnProperty: 'y', toString: 'z' } },
  { env: { 1: 'a', A: 'b' } },
  { env: { A: 'line\nbreak' } },
  { env: Object.freeze({ A: '1' }) },
  // Proxies: what they report of a property need not be what a read gives; zod reads.
  { env: new Proxy({ A: '1' }, { get: (t, k) => (k === 'A' ? 'x\0' : Reflect.get(t, k)) }) },
  new Proxy({ env: { A: '1' } } as Record<string, unknown>, { get: (t, k) => (k === 'env' ? { A: 'z\0' } : Reflect.get(t, k)) }),
  new Proxy({ env: { A: '1' } } as Record<string, unknown>, {}),
  { stopSignal: 'usr1', entrypoint: ['/bin/sh'], image: 'alpine' },
  { stopSignal: 'SIGNOPE', image: 'alpine' },
  { deviceReadBps: [{ path: '/dev/sda', rate: '1m' }, { major: 8, rate: 5 }], blkioWeightDevice: [{ path: '/dev/sda', weight: 5 }] },
  { unified: { 'memory.high': '64M', 'cgroup.procs': '1' } },
  { cgroupParent: '/a/../b', maskedPaths: ['rel'], timeout: 0 },
  { addHost: ['db:10.0.0.2', 'bad'], dns: ['1.1.1.1', 'x'], dnsSearch: ['ok.example'], expose: ['80', '1-99999'] },
  null,
  'a string',
  ['an', 'array'],
  42,
];

/** What a parse gives, comparable: the data, or each issue whole (code, path, message, keys, input). */
function outcome(r: z.util.SafeParseResult<unknown>) {
  return r.success ? { data: r.data } : { issues: r.error.issues.map(({ code, path, message, input, ...rest }) => ({ code, path, message, input, keys: 'keys' in rest ? rest.keys : undefined })) };
}

describe('lazyStrictObject: the options schema built per field given', () => {
  it.each(INPUTS.map((input) => [JSON.stringify(input) ?? String(input), input]))('%s: the same outcome as the whole schema', (_, input) => {
    const lazy = runOptionsSchema.safeParse(input, { reportInput: true });
    const full = runOptionsSchema.full().safeParse(input, { reportInput: true });
    expect(outcome(lazy)).toStrictEqual(outcome(full));
  });

  it('the limits alone: the same outcome as their whole schema', () => {
    for (const input of INPUTS) {
      const limits = typeof input === 'object' && input !== null && !Array.isArray(input) ? Object.fromEntries(Object.entries(input).filter(([k]) => cgroupLimitsSchema.keys.includes(k as never))) : input;
      expect(outcome(cgroupLimitsSchema.safeParse(limits, { reportInput: true }))).toStrictEqual(outcome(cgroupLimitsSchema.full().safeParse(limits, { reportInput: true })));
    }
  });

  it("a check sees the whole value, as ctx.value too, and its issues (strings included) carry it, as the whole schema's do", () => {
    const o = lazyStrictObject(
      { a: optional(() => z.number()), b: withDefault(5, () => z.number()) },
      (v, ctx) => {
        if ((ctx.value as { b?: number }).b !== v.b) ctx.addIssue({ code: 'custom', path: ['b'], message: 'ctx.value is not the whole value' });
        if (v.a !== undefined && v.a > v.b) ctx.addIssue('a is above b');
        if (v.a === 0) ctx.addIssue({ code: 'custom', path: ['a'], message: 'zero' });
      },
    );
    for (const input of [{ a: 1 }, { a: 9 }, { a: 0 }, { a: 9, b: 10 }, {}]) {
      expect(outcome(o.safeParse(input, { reportInput: true })), JSON.stringify(input)).toStrictEqual(outcome(o.full().safeParse(input, { reportInput: true })));
    }
    expect(o.safeParse({ a: 9 }, { reportInput: true }).error?.issues).toMatchObject([{ message: 'a is above b', input: { a: 9, b: 5 } }]);
  });

  it('builds the schemas of the fields given, once each; an absent field with a default gets a fresh copy of it', () => {
    const built: string[] = [];
    const counted = <S extends z.ZodMiniType>(name: string, build: () => S) => () => {
      built.push(name);
      return build();
    };
    const o = lazyStrictObject({
      a: optional(counted('a', () => z.string())),
      b: withDefault([] as string[], counted('b', () => z.array(z.string()))),
      c: optional(counted('c', () => z.number())),
    });
    const first = o.safeParse({ a: 'x' });
    expect(first).toEqual({ success: true, data: { a: 'x', b: [] } });
    expect(built).toEqual(['a']);
    const second = o.safeParse({ a: 'y', c: 2 });
    expect(second).toEqual({ success: true, data: { a: 'y', b: [], c: 2 } });
    expect(built).toEqual(['a', 'c']);
    // Each parse gets its own default: changing one changes no other.
    (first.data!.b as string[]).push('changed');
    expect(o.safeParse({}).data).toEqual({ b: [] });
    expect(built).toEqual(['a', 'c']);
    // An unknown key is refused as the strict object refuses it, without building anything more.
    const bad = o.safeParse({ a: 'x', d: 1 });
    expect(bad.success).toBe(false);
    expect(bad.error!.issues).toMatchObject([{ code: 'unrecognized_keys', keys: ['d'] }]);
    expect(built).toEqual(['a', 'c']);
  });

  it("does not build a field's schema for a value its accept takes; builds it for one it leaves", () => {
    const built: string[] = [];
    const o = lazyStrictObject({
      a: optional(() => z.string()),
      e: optional(
        () => {
          built.push('e');
          return z.record(z.string(), z.string());
        },
        (v) => (typeof v === 'object' && v !== null && Object.getPrototypeOf(v) === Object.prototype && Object.values(v).every((x) => typeof x === 'string') ? { ...v } : NOT_TAKEN),
      ),
    });
    const input = { a: 'x', e: { K: 'v' } };
    const took = o.safeParse(input);
    expect(took).toEqual({ success: true, data: { a: 'x', e: { K: 'v' } } });
    // A copy, as zod's record makes one.
    expect(took.data!.e).not.toBe(input.e);
    expect(built).toEqual([]);
    // A refusal in another field still comes, as the whole schema gives it.
    expect(o.safeParse({ a: 1, e: { K: 'v' } }).error!.issues).toMatchObject([{ path: ['a'] }]);
    expect(built).toEqual([]);
    // A value it leaves: the schema is built, and says what is wrong.
    expect(o.safeParse({ e: { K: 1 } }).error!.issues).toMatchObject([{ path: ['e', 'K'] }]);
    expect(built).toEqual(['e']);
  });

  it("takes a plain env without building its schema, and leaves the rest to it", () => {
    const accept = runOptionFields.env.accept!;
    for (const env of [{}, { Z: '1', A: '2' }, { PATH: '/usr/bin:/bin', HOME: '' }, { 1: 'a', constructor: 'b' }]) {
      const took = accept(env);
      expect(took, JSON.stringify(env)).toEqual(env);
      expect(took).not.toBe(env);
      expect(Object.keys(took as object)).toEqual(Object.keys(env));
    }
    const left: unknown[] = [
      { A: 1 },
      { '': 'x' },
      { 'A=B': 'x' },
      { A: 'x\0' },
      Object.create(null),
      new Proxy({ A: '1' }, {}),
      Object.defineProperty({}, 'A', { get: () => '1', enumerable: true }),
      Object.defineProperty({}, 'A', { value: '1', enumerable: false }),
      { [Symbol('s')]: 'x' },
      JSON.parse('{"__proto__":"x"}'),
      ['A=1'],
      'A=1',
      null,
    ];
    for (const env of left) expect(accept(env)).toBe(NOT_TAKEN);
  });
});
