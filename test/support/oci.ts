/**
 * The OCI config the runtime-spec's validation suite (runtime-tools) starts
 * every test from, in small: no user namespace, the Docker-like capability
 * set with CAP_MKNOD in all five sets, the six default mounts, deny-all
 * devices. The unit and integration suites of the OCI runtime build on it.
 */

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- a config.json, changed freely by each test
export type Config = Record<string, any>;

export const CAPS = ['CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW', 'CAP_SETGID', 'CAP_SETUID', 'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE', 'CAP_SYS_CHROOT', 'CAP_KILL', 'CAP_AUDIT_WRITE'];

/** A fresh copy, `root.path` and `process.args` as given. */
/** runtime-tools' linux_cgroups_devices rules: deny all, then three to allow (the first lines devices.list must show). */
export const RUNTIME_TOOLS_DEVICE_RULES = [
  { allow: false, access: 'rwm' },
  { allow: true, type: 'c', major: 10, minor: 229, access: 'rwm' },
  { allow: true, type: 'b', major: 8, minor: 20, access: 'rw' },
  { allow: true, type: 'b', major: 10, minor: 200, access: 'r' },
];

export function runtimeToolsConfig(rootPath: string, args: string[]): Config {
  return {
    ociVersion: '1.0.2',
    hostname: 'mrsdalloway',
    root: { path: rootPath, readonly: false },
    process: {
      user: { uid: 0, gid: 0 },
      args,
      env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'TERM=xterm'],
      cwd: '/',
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }],
      capabilities: { bounding: [...CAPS], effective: [...CAPS], inheritable: [...CAPS], permitted: [...CAPS], ambient: [...CAPS] },
    },
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
      { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
      { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
    ],
    linux: {
      resources: { devices: [{ allow: false, access: 'rwm' }] },
      namespaces: ['pid', 'network', 'ipc', 'uts', 'mount'].map((type) => ({ type })),
    },
  };
}
