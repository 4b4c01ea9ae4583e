#!/usr/bin/python3
"""Writes the seccomp filter the bench gives every peer that can take one.

    make-seccomp.py PROFILE.json FILTER.bpf

PROFILE.json is an OCI runtime-spec `linux.seccomp` object (for runc and crun);
FILTER.bpf is the same rules compiled to classic BPF by libseccomp (for
`bwrap --seccomp FD`). One rule set for both, so the peers pay for the same filter.

The rules are in the spirit of Docker's default and of tsbox's DESIGN.md floor:
every syscall libseccomp knows for this architecture is allowed except a deny
list of privileged or dangerous ones (EPERM), with the seed program's argument
filters: chmod/fchmod/fchmodat/fchmodat2 may not set S_ISUID or S_ISGID, clone
may not use CLONE_NEWUSER, ioctl may not use TIOCSTI, and clone3 returns ENOSYS
so that libc falls back to clone.
"""
import errno
import json
import sys

import seccomp

DENY = {
    "acct", "add_key", "bpf", "clock_adjtime", "clock_settime", "create_module", "delete_module",
    "finit_module", "fsconfig", "fsmount", "fsopen", "fspick", "get_kernel_syms", "get_mempolicy",
    "init_module", "ioperm", "iopl", "kcmp", "kexec_file_load", "kexec_load", "keyctl",
    "lookup_dcookie", "mbind", "migrate_pages", "mount", "mount_setattr", "move_mount", "move_pages",
    "name_to_handle_at", "nfsservctl", "open_by_handle_at", "open_tree", "perf_event_open",
    "pivot_root", "process_vm_readv", "process_vm_writev", "ptrace", "query_module", "quotactl",
    "quotactl_fd", "reboot", "request_key", "set_mempolicy", "set_mempolicy_home_node", "setns",
    "settimeofday", "swapoff", "swapon", "_sysctl", "sysfs", "syslog", "umount2", "unshare",
    "uselib", "userfaultfd", "ustat", "vhangup", "vm86", "vm86old",
}
S_ISUID_ISGID = 0o6000
CLONE_NEWUSER = 0x10000000
TIOCSTI = 0x5412
# syscall -> index of the mode argument
CHMODS = {"chmod": 1, "fchmod": 1, "fchmodat": 2, "fchmodat2": 2}
OCI_ARCH = {"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64"}


def known_syscalls():
    names = set()
    for nr in range(0, 1024):
        try:
            name = seccomp.resolve_syscall(seccomp.Arch.NATIVE, nr)
        except Exception:
            continue
        if name and not name.startswith(b"UNKNOWN"):
            names.add(name.decode())
    return names


def main(profile_path, bpf_path):
    import platform

    known = known_syscalls()
    special = set(CHMODS) | {"clone", "clone3", "ioctl"}
    allowed = sorted(known - DENY - special)

    f = seccomp.SyscallFilter(seccomp.ERRNO(errno.EPERM))
    for name in allowed:
        f.add_rule(seccomp.ALLOW, name)
    for name, ix in CHMODS.items():
        if name in known:
            f.add_rule(seccomp.ALLOW, name, seccomp.Arg(ix, seccomp.MASKED_EQ, S_ISUID_ISGID, 0))
    f.add_rule(seccomp.ALLOW, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, CLONE_NEWUSER, 0))
    f.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    f.add_rule(seccomp.ALLOW, "ioctl", seccomp.Arg(1, seccomp.NE, TIOCSTI))
    with open(bpf_path, "wb") as out:
        f.export_bpf(out)

    def masked(ix, mask):
        return {"index": ix, "value": mask, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}

    rules = [{"names": allowed, "action": "SCMP_ACT_ALLOW"}]
    for name, ix in CHMODS.items():
        if name in known:
            rules.append({"names": [name], "action": "SCMP_ACT_ALLOW", "args": [masked(ix, S_ISUID_ISGID)]})
    rules.append({"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [masked(0, CLONE_NEWUSER)]})
    rules.append({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS})
    rules.append({"names": ["ioctl"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 1, "value": TIOCSTI, "op": "SCMP_CMP_NE"}]})
    profile = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": errno.EPERM,
        "architectures": [OCI_ARCH[platform.machine()]],
        "syscalls": rules,
    }
    with open(profile_path, "w") as out:
        json.dump(profile, out, indent=1)
    print(f"seccomp: {len(allowed)} syscalls allowed, {len(known & DENY)} denied, {len(rules) - 1} special rules (argument filters, ENOSYS)")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: make-seccomp.py PROFILE.json FILTER.bpf")
    main(sys.argv[1], sys.argv[2])
