/**
 * tsbox: Linux containers for Node.js.
 *
 * ```ts
 * import { spawn } from 'tsbox';
 * const c = await spawn(['sh', '-c', 'echo $$; hostname'], { rootfs: './rootfs', stdio: 'inherit' });
 * const { exitCode } = await c.wait();
 * ```
 */
import { parseRunInput, type RunOptions } from './config/schema.js';
import { Container } from './runtime/container.js';
import { launch } from './runtime/launch.js';

export { TsboxError } from './errors.js';
export type { FailureReport } from './errors.js';
export type { RunOptions } from './config/schema.js';
export { Container } from './runtime/container.js';
export type { ExitResult } from './runtime/container.js';

/**
 * Starts `command` in a new container and resolves once it has been exec'd.
 * Rejects with a {@link TsboxError} naming the step that failed, without leaving
 * anything behind.
 */
export async function spawn(command: readonly string[], options: RunOptions = {}): Promise<Container> {
  const { command: argv, options: o } = parseRunInput(command, options);
  return launch(argv, o);
}
