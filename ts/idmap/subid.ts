/** /etc/subuid and /etc/subgid, and Debian's newuidmap/newgidmap (package `uidmap`). */
import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import { userInfo } from 'node:os';

export interface SubidRange {
  start: number;
  count: number;
}

/** The ranges `file` grants, each with its owner (a name or a uid); none when it is missing. */
function entries(file: string): (SubidRange & { owner: string })[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  const out: (SubidRange & { owner: string })[] = [];
  for (const line of text.split('\n')) {
    const [owner, start, count] = line.trim().split(':');
    if (owner === undefined || start === undefined || count === undefined) continue;
    const s = Number(start);
    const c = Number(count);
    if (Number.isSafeInteger(s) && Number.isSafeInteger(c) && c > 0) out.push({ owner, start: s, count: c });
  }
  return out;
}

/** The first range `file` grants the user (by name or by uid), if any. */
export function subidRange(file: string, user: { name: string; id: number }): SubidRange | undefined {
  const e = entries(file).find((r) => r.owner === user.name || r.owner === String(user.id));
  return e && { start: e.start, count: e.count };
}

/**
 * Every range `file` grants, with whose it is (a name or a uid, as the file
 * says). Read again only when the file changed (by its inode, size and
 * change time): root's every launch asks (ts/idmap/index.ts), and the files
 * seldom change.
 */
export function subidRanges(file: string): (SubidRange & { owner: string })[] {
  let stamp = 'missing';
  try {
    const st = statSync(file);
    stamp = `${st.ino}:${st.size}:${st.ctimeMs}`;
  } catch {
    // Missing: no ranges, as entries() says.
  }
  const known = rangesRead.get(file);
  if (known?.stamp === stamp) return known.ranges;
  const ranges = entries(file);
  rangesRead.set(file, { stamp, ranges });
  return ranges;
}

/** subidRanges' last read of each file. */
const rangesRead = new Map<string, { stamp: string; ranges: (SubidRange & { owner: string })[] }>();

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
