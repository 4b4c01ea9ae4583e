import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
        },
      },
      {
        test: {
          // Needs root: starts real containers. scripts/test.mjs refuses to
          // count a run where this suite did not run.
          name: 'integration',
          // test/oci: real OCI tools (podman and conmon, containerd's ctr and runc shim) driving tsbox.
          include: ['test/integration/**/*.test.ts', 'test/oci/**/*.test.ts'],
          globalSetup: ['test/integration/global-setup.ts'],
          testTimeout: 30_000,
          hookTimeout: 60_000,
          pool: 'forks',
          // One file at a time on any machine: files assert what the host
          // has left (no tsbox cgroup in any hierarchy, nothing in
          // /run/tsbox), which another file's containers would be. On two
          // cores this was already so (one worker); with more, it failed.
          fileParallelism: false,
        },
      },
      {
        test: {
          // Pure cgroup v2, as root inside the test VM (test/vm/run-cgroup2-suite.sh),
          // one boot; its global setup refuses to run anywhere else.
          name: 'cgroup2',
          include: ['test/cgroup2/**/*.test.ts'],
          globalSetup: ['test/cgroup2/global-setup.ts'],
          testTimeout: 120_000, // software emulation: JS runs 5–10× slower in the guest
          hookTimeout: 180_000,
          pool: 'forks',
          fileParallelism: false,
        },
      },
      {
        test: {
          // systemd as PID 1 on pure cgroup v2, as root inside the test VM booted
          // with systemd (TSBOX_VM_PROJECT=systemd test/vm/run-cgroup2-suite.sh):
          // the systemd cgroup driver. Its global setup refuses to run anywhere else.
          name: 'systemd',
          include: ['test/systemd/**/*.test.ts'],
          globalSetup: ['test/systemd/global-setup.ts'],
          testTimeout: 120_000,
          hookTimeout: 180_000,
          pool: 'forks',
          fileParallelism: false,
        },
      },
      {
        test: {
          // Packs tsbox as published (scripts/pack.mjs), installs it into an empty
          // project and runs it from there. Needs `npm run build` first, or
          // TSBOX_TEST_ROOT_TGZ and TSBOX_TEST_PLATFORM_TGZ (CI's tarballs).
          name: 'packaging',
          include: ['test/packaging/**/*.test.ts'],
          testTimeout: 60_000,
          hookTimeout: 300_000,
          pool: 'forks',
        },
      },
    ],
  },
});
