import { expect } from 'vitest';

import { TsboxError } from '../../ts/errors.js';

/** Runs `f`, expects it to throw a TsboxError, and returns it. */
export function rejection(f: () => unknown): TsboxError {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(TsboxError);
    return err as TsboxError;
  }
  throw new Error('expected a TsboxError, but nothing was thrown');
}
