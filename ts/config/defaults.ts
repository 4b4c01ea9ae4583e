/** tsbox's defaults: never weaker than the seed program's (DESIGN.md, Defaults). */

/**
 * Capabilities a container keeps by default: Docker's default set, less every
 * capability the seed program (contained.c) drops — FSETID, MKNOD, SETFCAP and
 * AUDIT_WRITE. Everything else is dropped from every set, bounding included.
 */
export const DEFAULT_CAPABILITIES: readonly string[] = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FOWNER',
  'CAP_KILL',
  'CAP_NET_BIND_SERVICE',
  'CAP_NET_RAW',
  'CAP_SETGID',
  'CAP_SETPCAP',
  'CAP_SETUID',
  'CAP_SYS_CHROOT',
];

export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * As root, container ids 0..65535 map to a host range in 0x70000000..0x7fffffff,
 * a span no distribution or systemd allocates (systemd's container ranges end
 * below it), so container root is nobody on the host.
 */
export const ROOT_MAP_BASE = 0x7000_0000;
export const ROOT_MAP_SIZE = 65536;
