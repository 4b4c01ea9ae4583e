/**
 * Containers' state directories, one per container, owned by this module:
 * `/run/tsbox/<id>/` as root, `$XDG_RUNTIME_DIR/tsbox/<id>/` otherwise (or
 * `/run/user/<uid>/tsbox`, or a private directory under the temporary
 * directory when neither exists). A container's directory holds its
 * monitor's control socket. Nothing in it is writable by a container: it is
 * 0700, owned by the caller, outside every container's root.
 */
import { mkdirSync, rmdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { fromSystemError, TsboxError } from '../errors.js';

/** Where every container's state directory of this user is. */
export function stateRoot(uid: number = process.getuid?.() ?? 0, env: NodeJS.ProcessEnv = process.env): string {
  if (uid === 0) return '/run/tsbox';
  if (env.XDG_RUNTIME_DIR) return join(env.XDG_RUNTIME_DIR, 'tsbox');
  const runUser = `/run/user/${uid}`;
  try {
    if (statSync(runUser).isDirectory()) return join(runUser, 'tsbox');
  } catch {
    // No session directory (no systemd login): a private one below.
  }
  return join(tmpdir(), `tsbox-state-${uid}`);
}

/** The state directory of container `id`. */
export function containerDir(id: string): string {
  return join(stateRoot(), id);
}

/** Makes container `id`'s state directory (0700); refuses an id in use. */
export function createContainerDir(id: string): string {
  const root = stateRoot();
  try {
    mkdirSync(root, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw fromSystemError('state', err, `create the state directory ${root}`, 'it must be writable: /run/tsbox as root, $XDG_RUNTIME_DIR/tsbox otherwise');
  }
  const st = statSync(root);
  if (st.uid !== (process.getuid?.() ?? 0)) {
    throw new TsboxError({ step: 'state', errno: 1, path: root, detail: 'the state directory belongs to another user', hint: 'set XDG_RUNTIME_DIR to a directory of your own' });
  }
  const dir = join(root, id);
  try {
    mkdirSync(dir, { mode: 0o700 });
  } catch (err) {
    throw fromSystemError('state', err, `create the container's state directory ${dir}`, (err as NodeJS.ErrnoException).code === 'EEXIST' ? 'container ids must be unique' : undefined);
  }
  return dir;
}

/** Removes container `id`'s state directory, and the root when it is empty. */
export function removeContainerDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  try {
    rmdirSync(join(dir, '..'));
  } catch {
    // Other containers' directories are there.
  }
}
