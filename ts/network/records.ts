/**
 * Where the network's records are, and how they are listed: small enough
 * for gc, the launch and the keeper to load without the bridge's code.
 */
import { readdirSync } from 'node:fs';

/** Where the bridge network keeps its state: host-wide, whatever state root a caller uses (one set of leases). */
export const NETWORK_DIR = '/run/tsbox/network';

/**
 * The names in `dir` of the records `<container id><suffix>` (`.json` a
 * bridged container's, `.keeper.json` a keeper's, `.pasta.json` pasta's);
 * none when `dir` is missing or unreadable.
 */
export function recordNames(dir: string, suffix: string): string[] {
  const pattern = /^[0-9a-f]{64}$/;
  try {
    return readdirSync(dir).filter((n) => n.endsWith(suffix) && pattern.test(n.slice(0, -suffix.length)));
  } catch {
    return [];
  }
}
