/**
 * Option schemas built when an option is first given, not when tsbox loads.
 *
 * Building zod schemas is code that runs once per process, cold: building
 * every option's schema took ~8 ms of `tsbox run`'s start (bench/README.md,
 * "Where the CLI's start goes") although a run gives a handful of options.
 * A {@link LazyObject} checks exactly what `z.strictObject(fields)` checks, with
 * the same issues and output, but builds only the schemas of the fields the
 * input has; an absent field with a default gets the default (zod does not
 * parse a default either).
 */
import { types } from 'node:util';

import * as z from 'zod/mini';

/** A value built on first use and kept. */
export function once<T>(build: () => T): () => T {
  let value: T | undefined;
  let built = false;
  return () => {
    if (!built) {
      value = build();
      built = true;
    }
    return value as T;
  };
}

/**
 * What an {@link Accept} returns for a value it does not vouch for: the
 * field's schema then parses it (and says what is wrong with it).
 */
export const NOT_TAKEN: unique symbol = Symbol('not taken');

/**
 * A cheap check that takes a value the field's schema would take unchanged,
 * and returns what that schema's parse would return; NOT_TAKEN for anything
 * else, which the schema then parses. It must never take a value the schema
 * refuses: the lazy-schema unit test parses each field's inputs both ways.
 */
export type Accept = (value: unknown) => unknown;

/** A field's schema, built on first use; `default` when an absent field has one; `accept` to skip building it for common values. */
export type Field<S extends z.ZodMiniType = z.ZodMiniType> = (() => S) & { readonly default?: () => unknown; readonly accept?: Accept };
export type Fields = Record<string, Field>;
export type ShapeOf<F extends Fields> = { -readonly [K in keyof F]: ReturnType<F[K]> };
export type LazyInput<F extends Fields> = z.input<z.ZodMiniObject<ShapeOf<F>, z.core.$strict>>;
export type LazyOutput<F extends Fields> = z.output<z.ZodMiniObject<ShapeOf<F>, z.core.$strict>>;

/** A field that is optional: absent, it stays absent. */
export function optional<S extends z.ZodMiniType>(build: () => S, accept?: Accept): Field<z.ZodMiniOptional<S>> {
  const field = once(() => z.optional(build()));
  return accept ? Object.assign(field, { accept }) : field;
}

/** What a field's value taken by its Accept is to zod: anything, passed through (replaced by the Accept's value after). */
const taken = once(() => z.unknown());

/**
 * A field with a default: `z._default(build(), value)`, and the default known
 * without building the schema. Arrays and objects are copied (as zod does), so
 * no two parses share one.
 */
export function withDefault<S extends z.ZodMiniType>(value: z.util.NoUndefined<z.output<S>>, build: () => S): Field<z.ZodMiniDefault<S>> {
  const copy = () => (Array.isArray(value) ? [...value] : typeof value === 'object' && value !== null ? { ...value } : value) as z.util.NoUndefined<z.output<S>>;
  return Object.assign(once(() => z._default(build(), copy)), { default: copy });
}

export interface LazyObject<F extends Fields> {
  /** The field names, in order. */
  readonly keys: readonly (keyof F & string)[];
  /** The whole schema, every field built (the JSON Schema, and input that is not an object). */
  full(): z.ZodMiniObject<ShapeOf<F>, z.core.$strict>;
  safeParse(input: unknown, params?: z.core.ParseContext<z.core.$ZodIssue>): z.util.SafeParseResult<LazyOutput<F>>;
}

type Check<F extends Fields> = (value: LazyOutput<F>, ctx: z.core.$RefinementCtx<LazyOutput<F>>) => void;

/** The strict object of `fields`, then `check` on the whole value (defaults in) when the fields passed. */
export function lazyStrictObject<F extends Fields>(fields: F, check?: Check<F>): LazyObject<F> {
  const keys = Object.keys(fields) as (keyof F & string)[];
  /** The value with each absent field's default, in the fields' order. */
  const complete = (value: Record<string, unknown>): LazyOutput<F> => {
    const out: Record<string, unknown> = {};
    for (const k of keys) {
      if (Object.hasOwn(value, k)) out[k] = value[k];
      else if (fields[k]!.default) out[k] = fields[k]!.default();
    }
    return out as LazyOutput<F>;
  };
  // The check sees the whole value, and its issues carry it as their input, as the whole schema's do.
  const withCheck = <S extends z.ZodMiniObject>(s: S): S =>
    check
      ? s.check(
          z.superRefine((v, ctx) => {
            const whole = complete(v);
            // A string issue as zod makes one (custom, aborting), with the whole value too.
            const addIssue = (issue: Parameters<typeof ctx.addIssue>[0]) =>
              ctx.addIssue(typeof issue === 'string' ? { code: 'custom', message: issue, input: whole, continue: false } : ({ input: whole, ...issue } as typeof issue));
            check(whole, Object.assign(Object.create(ctx) as typeof ctx, { addIssue, value: whole }));
          }),
        )
      : s;
  const full = once(() => withCheck(z.strictObject(Object.fromEntries(keys.map((k) => [k, fields[k]!()])) as ShapeOf<F>)));
  // One object schema per set of fields given, kept (zod compiles each on its first parse).
  const partial = new Map<string, z.ZodMiniObject>();
  const PARTIAL_KEPT = 64;
  return {
    keys,
    full,
    safeParse(input, params) {
      // Not an object: the whole schema says so, as it would.
      if (typeof input !== 'object' || input === null || Array.isArray(input)) return full().safeParse(input, params);
      // Every field the input has, as zod reads it (own or inherited, even
      // undefined): the same fields, read once by zod, parsed as the whole
      // schema parses them; any other key is refused by the strict object.
      const present = keys.filter((k) => k in input);
      // A field with an Accept that takes its value (an own data property,
      // so that nothing is read twice) is not built: zod passes it through.
      // Not for a Proxy: what it reports of a property need not be what a read gives.
      let took: Map<string, unknown> | null = null;
      for (const k of types.isProxy(input) ? [] : present) {
        const accept = fields[k]!.accept;
        const own = accept ? Object.getOwnPropertyDescriptor(input, k) : undefined;
        if (!accept || !own || !('value' in own)) continue;
        const v = accept(own.value);
        if (v !== NOT_TAKEN) (took ??= new Map()).set(k, v);
      }
      const id = present.map((k) => (took?.has(k) ? `${k}~` : k)).join(',');
      let schema = partial.get(id);
      if (!schema) {
        if (partial.size >= PARTIAL_KEPT) partial.clear();
        schema = withCheck(z.strictObject(Object.fromEntries(present.map((k) => [k, took?.has(k) ? taken() : fields[k]!()]))));
        partial.set(id, schema);
      }
      const r = schema.safeParse(input, params);
      if (!r.success) return r as z.util.SafeParseResult<LazyOutput<F>>;
      const data = complete(r.data) as Record<string, unknown>;
      for (const [k, v] of took ?? []) data[k] = v;
      return { success: true, data } as z.util.SafeParseResult<LazyOutput<F>>;
    },
  };
}
