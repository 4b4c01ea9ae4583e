/** /etc/subuid and /etc/subgid, and Debian's newuidmap/newgidmap (package `uidmap`). */
import { accessSync, constants, readFileSync } from 'node:fs';
import { userInfo } from 'node:os';

export interface SubidRange {
  start: number;
  count: number;
}

/** The first range `file` grants the user (by name or by uid), if any. */
export function subidRange(file: string, user: { name: string; id: number }): SubidRange | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  for (const line of text.split('\n')) {
    const [owner, start, count] = line.trim().split(':');
    if (owner === undefined || start === undefined || count === undefined) continue;
    if (owner !== user.name && owner !== String(user.id)) continue;
    const s = Number(start);
    const c = Number(count);
    if (Number.isSafeInteger(s) && Number.isSafeInteger(c) && c > 0) return { start: s, count: c };
  }
  return undefined;
}

/** Absolute path of a setuid helper such as newuidmap, if installed. */
export function findHelper(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(':').concat(['/usr/bin', '/bin'])) {
    const p = `${dir}/${name}`;
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // Not here.
    }
  }
  return undefined;
}

let userName: string | undefined;

/** This process's user name, looked up once. */
export function currentUserName(): string {
  if (userName !== undefined) return userName;
  try {
    userName = userInfo().username;
  } catch {
    userName = String(process.getuid?.() ?? '');
  }
  return userName;
}
