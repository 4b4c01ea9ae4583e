//! Profiles read with the JSON path of every problem; compiled filters run
//! through a BPF interpreter (`bpf_interp`) and checked verdict by verdict, for
//! both architectures, on any host.

use super::bpf_interp::{self, SeccompData, Verdict};
use super::default::{ALLOWED, ALWAYS_DENIED, NOT_IMPLEMENTED};
use super::*;

const EPERM: Verdict = Verdict::Errno(1);
const ENOSYS: Verdict = Verdict::Errno(38);
const EAFNOSUPPORT: Verdict = Verdict::Errno(97);
const ALLOW: Verdict = Verdict::Allow;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
const AUDIT_ARCH_ARM: u32 = 0x4000_0028;

fn nr(arch: Arch, name: &str) -> i32 {
    arch.syscall(name)
        .unwrap_or_else(|| panic!("{name} is not a system call on {}", arch.name())) as i32
}

/// What the kernel hands the filter for call `nr` made through ABI `arch_value`.
fn data(arch_value: u32, nr: i32, args: [u64; 6]) -> SeccompData {
    SeccompData {
        nr,
        arch: arch_value,
        instruction_pointer: 0x7fff_0000_1234,
        args,
    }
}

fn run_raw(bpf: &Bpf, arch_value: u32, nr: i32, args: [u64; 6]) -> Verdict {
    let prog: Vec<Instruction> = bpf.instructions().collect();
    Verdict::from_ret(bpf_interp::run(&prog, &data(arch_value, nr, args)).unwrap())
}

fn verdict(bpf: &Bpf, arch: Arch, name: &str, args: &[u64]) -> Verdict {
    let mut a = [0u64; 6];
    a[..args.len()].copy_from_slice(args);
    run_raw(bpf, arch.audit_arch(), nr(arch, name), a)
}

fn default_bpf(arch: Arch) -> Bpf {
    compile(&default_profile(), arch).unwrap()
}

fn parse_err(json: &str) -> Vec<SeccompError> {
    match Profile::from_json(json) {
        Ok(p) => panic!("expected problems, got {p:?}"),
        Err(Problems(v)) => v,
    }
}

fn messages(json: &str) -> Vec<String> {
    parse_err(json).iter().map(|e| e.to_string()).collect()
}

fn profile(json: &str) -> Profile {
    Profile::from_json(json).unwrap_or_else(|e| panic!("{e}"))
}

// ---------------------------------------------------------------- the default

/// The seed's rules and what ordinary programs need, call by call.
#[test]
fn the_default_profile_gives_the_expected_verdicts() {
    const CLONE_NEWNS: u64 = 0x0002_0000;
    const CLONE_NEWUSER: u64 = 0x1000_0000;
    const CLONE_NEWPID: u64 = 0x2000_0000;
    const SIGCHLD: u64 = 17;
    const THREAD_FLAGS: u64 = 0x003d_0f00; // CLONE_VM|FS|FILES|SIGHAND|THREAD|SYSVSEM|SETTLS|PARENT_SETTID|CHILD_CLEARTID
    const AT_FDCWD: u64 = -100i64 as u64;
    const TIOCSTI: u64 = 0x5412;
    const TIOCLINUX: u64 = 0x541c;
    const TCGETS: u64 = 0x5401;
    const TIOCGWINSZ: u64 = 0x5413;
    let path = 0x5555_0000_1000u64;
    #[rustfmt::skip]
    let table: &[(&str, &[u64], Verdict)] = &[
        // contained.c: no setuid/setgid bits from the chmod family.
        ("chmod", &[path, 0o755], ALLOW),
        ("chmod", &[path, 0o4755], EPERM),
        ("chmod", &[path, 0o2755], EPERM),
        ("chmod", &[path, 0o6755], EPERM),
        ("chmod", &[path, 0o1777], ALLOW),
        // The kernel reads a umode_t: bits above it change nothing.
        ("chmod", &[path, 0xdead_0000_0000_0000 | 0o755], ALLOW),
        ("chmod", &[path, 0xdead_0000_0000_0000 | 0o4755], EPERM),
        ("fchmod", &[3, 0o644], ALLOW),
        ("fchmod", &[3, 0o4711], EPERM),
        ("fchmodat", &[AT_FDCWD, path, 0o755, 0], ALLOW),
        ("fchmodat", &[AT_FDCWD, path, 0o2755, 0], EPERM),
        ("fchmodat2", &[AT_FDCWD, path, 0o700, 0x100], ALLOW),
        ("fchmodat2", &[AT_FDCWD, path, 0o4700, 0x100], EPERM),
        // contained.c: no user namespaces, by unshare or clone.
        ("unshare", &[CLONE_NEWUSER], EPERM),
        ("unshare", &[CLONE_NEWUSER | CLONE_NEWNS], EPERM),
        ("unshare", &[CLONE_NEWNS], ALLOW),
        ("unshare", &[CLONE_NEWPID], ALLOW),
        ("clone", &[SIGCHLD], ALLOW),
        ("clone", &[THREAD_FLAGS], ALLOW),
        ("clone", &[CLONE_NEWUSER | SIGCHLD], EPERM),
        ("clone", &[0xffff_ffff_ffff_ffff], EPERM),
        // clone3's flags sit in memory the filter cannot read: ENOSYS makes
        // libc fall back to clone.
        ("clone3", &[path, 88], ENOSYS),
        // contained.c: no TIOCSTI (nor TIOCLINUX); the kernel truncates the
        // request to 32 bits, and so does the check.
        ("ioctl", &[0, TIOCSTI, path], EPERM),
        ("ioctl", &[0, 0x1_0000_0000 | TIOCSTI, path], EPERM),
        ("ioctl", &[0, TIOCLINUX, path], EPERM),
        ("ioctl", &[0, TCGETS, path], ALLOW),
        ("ioctl", &[1, TIOCGWINSZ, path], ALLOW),
        // contained.c: always denied.
        ("keyctl", &[0], EPERM),
        ("add_key", &[], EPERM),
        ("request_key", &[], EPERM),
        ("ptrace", &[0], EPERM),
        ("mbind", &[], EPERM),
        ("migrate_pages", &[], EPERM),
        ("move_pages", &[], EPERM),
        ("set_mempolicy", &[], EPERM),
        ("userfaultfd", &[0], EPERM),
        ("perf_event_open", &[], EPERM),
        // Docker's default leaves these to CAP_SYS_ADMIN and friends; tsbox drops them.
        ("mount", &[], EPERM),
        ("umount2", &[], EPERM),
        ("pivot_root", &[], EPERM),
        ("setns", &[3, 0], EPERM),
        ("bpf", &[], EPERM),
        ("init_module", &[], EPERM),
        ("kexec_load", &[], EPERM),
        ("reboot", &[], EPERM),
        ("open_by_handle_at", &[], EPERM),
        ("io_uring_setup", &[8, path], EPERM),
        ("process_vm_readv", &[], EPERM),
        ("sethostname", &[], EPERM),
        ("statmount", &[], ENOSYS),
        ("lsm_list_modules", &[], ENOSYS),
        // personality: the values Docker allows, compared on 32 bits.
        ("personality", &[0], ALLOW),
        ("personality", &[0xffff_ffff], ALLOW),
        ("personality", &[0x0040_0000], EPERM), // ADDR_NO_RANDOMIZE
        // What busybox, sh, coreutils, node and tsbox's init do all day.
        ("read", &[0, path, 4096], ALLOW),
        ("write", &[1, path, 12], ALLOW),
        ("openat", &[AT_FDCWD, path, 0], ALLOW),
        ("newfstatat", &[AT_FDCWD, path, path, 0], ALLOW),
        ("statx", &[AT_FDCWD, path, 0, 0x7ff, path], ALLOW),
        ("mmap", &[0, 4096, 3, 0x22, u64::MAX, 0], ALLOW),
        ("execve", &[path, path, path], ALLOW),
        ("exit_group", &[0], ALLOW),
        ("wait4", &[u64::MAX, path, 0, 0], ALLOW),
        ("kill", &[1, 15], ALLOW),
        ("signalfd4", &[u64::MAX, path, 8, 0x80000], ALLOW),
        ("rt_sigreturn", &[], ALLOW),
        ("rt_sigaction", &[2, path, 0, 8], ALLOW),
        ("futex", &[path, 0x80, 1, 0], ALLOW),
        ("epoll_pwait", &[3, path, 1024, u64::MAX, 0, 8], ALLOW),
        ("getrandom", &[path, 16, 0], ALLOW),
        ("pipe2", &[path, 0x80000], ALLOW),
        ("sendmsg", &[3, path, 0x4000], ALLOW),
        ("close_range", &[3, u64::from(u32::MAX), 4], ALLOW),
        ("prctl", &[1, 9], ALLOW),
        ("chroot", &[path], ALLOW),
        // Socket families: the allowlist, compared on the 32 bits the kernel reads.
        ("socket", &[1, 1, 0], ALLOW),
        ("socket", &[2, 1, 0], ALLOW),
        ("socket", &[10, 2, 0], ALLOW),
        ("socket", &[16, 3, 0], ALLOW),
        ("socket", &[17, 3, 0], ALLOW),
        ("socket", &[40, 1, 0], EAFNOSUPPORT), // AF_VSOCK
        ("socket", &[0x1_0000_0000 | 40, 1, 0], EAFNOSUPPORT),
        ("socket", &[38, 5, 0], EAFNOSUPPORT), // AF_ALG
        ("socket", &[15, 3, 2], EAFNOSUPPORT), // AF_KEY
        ("socket", &[21, 5, 0], EAFNOSUPPORT), // AF_RDS
        ("socket", &[29, 3, 1], EAFNOSUPPORT), // AF_CAN
        ("socket", &[31, 1, 0], EAFNOSUPPORT), // AF_BLUETOOTH
        ("socket", &[43, 1, 0], EAFNOSUPPORT), // AF_SMC
        ("socketpair", &[1, 1, 0, path], ALLOW),
        ("socketpair", &[40, 1, 0, path], EAFNOSUPPORT),
        // No setuid or setgid file without chmod either.
        ("openat", &[AT_FDCWD, path, 0o101, 0o644], ALLOW),
        ("openat", &[AT_FDCWD, path, 0o101, 0o4755], EPERM),
        ("openat", &[AT_FDCWD, path, 0o101, 0o2755], EPERM),
        ("openat", &[AT_FDCWD, path, 0o20_200_002, 0o4700], EPERM), // O_TMPFILE
        ("openat", &[AT_FDCWD, path, 0o2, 0o4755], ALLOW), // no O_CREAT: mode unused
        ("mknodat", &[AT_FDCWD, path, 0o100_644, 0], ALLOW),
        ("mknodat", &[AT_FDCWD, path, 0o104_755, 0], EPERM),
        ("mknodat", &[AT_FDCWD, path, 0o2755, 0], EPERM),
        ("mknodat", &[AT_FDCWD, path, 0o012_644, 0], ALLOW), // a FIFO
        ("openat2", &[AT_FDCWD, path, path, 24], ENOSYS),
        // Terminal ioctls that would outlive the container on a given terminal.
        ("ioctl", &[0, 0x540c, 0], EPERM), // TIOCEXCL
        ("ioctl", &[0, 0x540d, 0], ALLOW), // TIOCNXCL
        ("ioctl", &[0, 0x5423, path], EPERM), // TIOCSETD
        ("ioctl", &[0, 0x541d, 0], EPERM), // TIOCCONS
    ];
    for arch in Arch::ALL {
        let bpf = default_bpf(arch);
        for (name, args, want) in table {
            if arch.syscall(name).is_none() {
                // aarch64 has only the *at forms of chmod; everything else exists on both.
                assert_eq!((arch, *name), (Arch::Aarch64, "chmod"));
                continue;
            }
            assert_eq!(verdict(&bpf, arch, name, args), *want, "{}: {name}{args:x?}", arch.name());
        }
    }
}

#[test]
fn the_default_profile_denies_unknown_numbers_and_kills_other_abis() {
    for arch in Arch::ALL {
        let bpf = default_bpf(arch);
        // Beyond every table: EPERM, like every call not on the list.
        assert_eq!(run_raw(&bpf, arch.audit_arch(), 1000, [0; 6]), EPERM);
        assert_eq!(run_raw(&bpf, arch.audit_arch(), -1, [0; 6]), EPERM);
        // A 32-bit ABI: killed before its numbers can be misread.
        let read = nr(arch, "read");
        for other in [
            AUDIT_ARCH_I386,
            AUDIT_ARCH_ARM,
            Arch::ALL.iter().find(|a| **a != arch).unwrap().audit_arch(),
        ] {
            assert_eq!(
                run_raw(&bpf, other, read, [0; 6]),
                Verdict::KillProcess,
                "{} filter, arch {other:#x}",
                arch.name()
            );
        }
    }
    // x32 (x86_64's arch value, bit 30 set in the number): killed, as the
    // other ABIs; -1 is no call and stays the default's, above.
    let bpf = default_bpf(Arch::X86_64);
    assert_eq!(run_raw(&bpf, Arch::X86_64.audit_arch(), x32(0), [0; 6]), Verdict::KillProcess);
}

// ------------------------------------------------------------------- x32

/// <asm/unistd.h> `__X32_SYSCALL_BIT`.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// The x32 number of an x86_64 call number (or of x32's own, 512 to 547).
fn x32(nr: u32) -> i32 {
    (X32_SYSCALL_BIT | nr) as i32
}

/// x32 calls, by number without bit 30, with the arguments a deny-list's
/// rules deny: x86_64's number for the calls x32 shares (unshare 272, keyctl
/// 250, chmod 90), x32's own for those whose arguments differ in layout
/// (ptrace 521; x86_64's 101 with bit 30 is no x32 call, and killed too); and
/// two calls no rule names. These tests run the filter only: this machine's
/// kernel is built without CONFIG_X86_X32_ABI, so no test can make a real x32
/// call (test/integration/seccomp.test.ts shows the kernel's filter killing
/// the attempt).
const X32_CALLS: &[(&str, u32, [u64; 6])] = &[
    ("unshare(CLONE_NEWUSER)", 272, [0x1000_0000, 0, 0, 0, 0, 0]),
    ("ptrace(PTRACE_TRACEME), x32's own 521", 521, [0; 6]),
    ("ptrace(PTRACE_TRACEME), x86_64's 101", 101, [0; 6]),
    ("keyctl(KEYCTL_GET_KEYRING_ID)", 250, [0, u64::MAX - 2, 0, 0, 0, 0]),
    ("chmod(path, 04755)", 90, [0x5555_0000_1000, 0o4755, 0, 0, 0, 0]),
    ("mkdir(path, 0755)", 83, [0x5555_0000_1000, 0o755, 0, 0, 0, 0]),
    ("getpid()", 39, [0; 6]),
];

/// Checks `bpf`, compiled from a profile whose default is ALLOW and that denies
/// unshare(CLONE_NEWUSER), ptrace, keyctl and chmod with S_ISUID on their
/// x86_64 numbers: those still get `native_denial`, every x32 call is killed,
/// and ordinary x86_64 calls and -1 are still allowed.
fn assert_x32_is_killed(what: &str, bpf: &Bpf, native_denial: Verdict) {
    let x86_64 = Arch::X86_64;
    for (call, nr, args) in X32_CALLS {
        assert_eq!(
            run_raw(bpf, x86_64.audit_arch(), x32(*nr), *args),
            Verdict::KillProcess,
            "{what}: x32 {call} must not reach the default ALLOW"
        );
    }
    for nr in [
        X32_SYSCALL_BIT,
        X32_SYSCALL_BIT + 547,
        X32_SYSCALL_BIT + 0x1000,
        0x7fff_ffff,
        0x8000_0000,
        u32::MAX - 1,
    ] {
        assert_eq!(
            run_raw(bpf, x86_64.audit_arch(), nr as i32, [0; 6]),
            Verdict::KillProcess,
            "{what}: {nr:#x}"
        );
    }
    // The deny-list itself, on x86_64's own numbers, as before.
    assert_eq!(verdict(bpf, x86_64, "unshare", &[0x1000_0000]), native_denial, "{what}");
    assert_eq!(verdict(bpf, x86_64, "ptrace", &[0]), native_denial, "{what}");
    assert_eq!(verdict(bpf, x86_64, "keyctl", &[0]), native_denial, "{what}");
    assert_eq!(verdict(bpf, x86_64, "chmod", &[0x5555_0000_1000, 0o4755]), native_denial, "{what}");
    assert_eq!(verdict(bpf, x86_64, "chmod", &[0x5555_0000_1000, 0o755]), ALLOW, "{what}");
    assert_eq!(verdict(bpf, x86_64, "unshare", &[0x0002_0000]), ALLOW, "{what}");
    assert_eq!(verdict(bpf, x86_64, "getpid", &[]), ALLOW, "{what}");
    // -1 is no call, and a tracer's way to skip one: the default's, not killed.
    assert_eq!(run_raw(bpf, x86_64.audit_arch(), -1, [0; 6]), ALLOW, "{what}: -1");
}

/// The rules of `--preset contained` (SEED_SECCOMP_PROFILE in
/// ts/config/presets.ts) that the x32 finding named, as that profile writes
/// them: ALLOW by default, and its `architectures` without SCMP_ARCH_X32,
/// where libseccomp gives x32 the bad-arch action.
const CONTAINED_RULES: &str = r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"],
    "syscalls": [
        {"names": ["chmod", "fchmod"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1, "args": [{"index": 1, "value": 2048, "valueTwo": 2048, "op": "SCMP_CMP_MASKED_EQ"}]},
        {"names": ["chmod", "fchmod"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1, "args": [{"index": 1, "value": 1024, "valueTwo": 1024, "op": "SCMP_CMP_MASKED_EQ"}]},
        {"names": ["unshare"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1, "args": [{"index": 0, "value": 268435456, "valueTwo": 268435456, "op": "SCMP_CMP_MASKED_EQ"}]},
        {"names": ["clone"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1, "args": [{"index": 0, "value": 268435456, "valueTwo": 268435456, "op": "SCMP_CMP_MASKED_EQ"}]},
        {"names": ["keyctl", "add_key", "request_key", "ptrace", "mbind", "migrate_pages", "move_pages", "set_mempolicy", "userfaultfd", "perf_event_open"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
        {"names": ["clone3", "openat2"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}
    ]}"#;

#[test]
fn x32_calls_are_killed_under_the_contained_deny_list() {
    let bpf = compile(&profile(CONTAINED_RULES), Arch::X86_64).unwrap();
    assert_x32_is_killed("contained", &bpf, EPERM);
}

/// A user's deny-list from `--seccomp FILE` or an OCI bundle, with and without
/// SCMP_ARCH_X32 in `architectures` (Docker's and podman's defaults list it):
/// tsbox has no x32 table, so both kill x32 calls rather than apply the rules
/// with x32's numbers; neither lets them reach the default ALLOW.
#[test]
fn x32_calls_are_killed_under_a_default_allow_oci_profile() {
    let rules = r#""syscalls": [
        {"names": ["unshare", "clone"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13, "args": [{"index": 0, "value": 268435456, "valueTwo": 268435456, "op": "SCMP_CMP_MASKED_EQ"}]},
        {"names": ["chmod"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13, "args": [{"index": 1, "value": 2048, "valueTwo": 2048, "op": "SCMP_CMP_MASKED_EQ"}]},
        {"names": ["ptrace", "keyctl"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
        {"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}
    ]"#;
    for architectures in [
        "",
        r#""architectures": ["SCMP_ARCH_X86_64"],"#,
        r#""architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],"#,
    ] {
        let text = format!(r#"{{"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock", {architectures} {rules}}}"#);
        // As `--seccomp FILE` takes it, and as an OCI bundle's (relaxed first, with an agent).
        let strict = compile(&profile(&text), Arch::X86_64).unwrap();
        let (relaxed, _) = relax(&text).unwrap();
        let bundle = compile(&Profile::from_json_for(&relaxed, Agent::Given).unwrap(), Arch::X86_64).unwrap();
        for bpf in [&strict, &bundle] {
            assert_x32_is_killed(&format!("OCI profile {architectures}"), bpf, Verdict::Errno(13));
            // The agent is notified of x86_64's mkdir only; x32's is killed before it.
            assert_eq!(verdict(bpf, Arch::X86_64, "mkdir", &[]), Verdict::UserNotif);
        }
    }
}

/// The guard stops every x32 number of the default profile before the tree,
/// and no x86_64 number: those are below bit 30, so its `jge` falls through to
/// the tree, whose verdicts `the_default_profile_compiles_to_what_its_rules_say`
/// checks against the rules.
#[test]
fn the_x32_guard_leaves_native_calls_to_the_rules() {
    let bpf = default_bpf(Arch::X86_64);
    let prog: Vec<Instruction> = bpf.instructions().collect();
    let checked = bpf_interp::Checked::new(&prog).unwrap();
    for (name, nr) in syscalls::X86_64 {
        let native = checked.run(&data(Arch::X86_64.audit_arch(), *nr as i32, [0; 6])).unwrap();
        assert_ne!(Verdict::from_ret(native.ret), Verdict::KillProcess, "{name}");
        let x = checked.run(&data(Arch::X86_64.audit_arch(), x32(*nr), [0; 6])).unwrap();
        assert_eq!(Verdict::from_ret(x.ret), Verdict::KillProcess, "x32 {name}");
        // ld arch, jeq, ld nr, jge, jeq -1, ret.
        assert_eq!(x.steps, 6, "x32 {name}: killed in the prologue, before the tree");
    }
    // aarch64 has no x32: its filter has no guard, and its numbers from bit 30
    // up (no call) get the default.
    let arm = default_bpf(Arch::Aarch64);
    assert_eq!(run_raw(&arm, Arch::Aarch64.audit_arch(), x32(39), [0; 6]), EPERM);
}

/// The calls of the default whose verdict depends on their arguments.
const CONDITIONAL: &[&str] = &[
    "chmod",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "clone",
    "unshare",
    "ioctl",
    "personality",
    "open",
    "openat",
    "creat",
    "mknod",
    "mknodat",
];

#[test]
fn every_call_of_the_default_lists_gets_its_lists_verdict() {
    for arch in Arch::ALL {
        let bpf = default_bpf(arch);
        for name in ALLOWED.iter().filter(|n| arch.syscall(n).is_some()) {
            // Zeroed arguments pass every conditional check of the default.
            assert_eq!(verdict(&bpf, arch, name, &[]), ALLOW, "{}: {name}", arch.name());
            if !CONDITIONAL.contains(name) {
                assert_eq!(verdict(&bpf, arch, name, &[u64::MAX; 6]), ALLOW, "{}: {name}", arch.name());
            }
        }
        for name in ALWAYS_DENIED.iter().filter(|n| arch.syscall(n).is_some()) {
            assert_eq!(verdict(&bpf, arch, name, &[]), EPERM, "{}: {name}", arch.name());
        }
        for name in NOT_IMPLEMENTED.iter().filter(|n| arch.syscall(n).is_some()) {
            assert_eq!(verdict(&bpf, arch, name, &[]), ENOSYS, "{}: {name}", arch.name());
        }
    }
}

/// The allowed calls whose verdict does not depend on arguments never make the
/// filter read an argument, so the kernel's per-call action cache (5.11+) lets
/// them through without running the filter at all.
#[test]
fn unconditionally_allowed_calls_never_read_arguments() {
    for arch in Arch::ALL {
        let bpf = default_bpf(arch);
        let prog: Vec<Instruction> = bpf.instructions().collect();
        for name in ALLOWED.iter().filter(|n| arch.syscall(n).is_some() && !CONDITIONAL.contains(n)) {
            let trace = bpf_interp::run_traced(&prog, &data(arch.audit_arch(), nr(arch, name), [0; 6])).unwrap();
            assert_eq!(Verdict::from_ret(trace.ret), ALLOW);
            assert!(!trace.read_args, "{}: {name} reads its arguments", arch.name());
        }
    }
}

#[test]
fn the_default_profile_fits_the_kernel_limit_and_names_only_real_calls() {
    for arch in Arch::ALL {
        let bpf = default_bpf(arch);
        let prog: Vec<Instruction> = bpf.instructions().collect();
        bpf_interp::check(&prog).unwrap();
        assert!(bpf.len() < 2500, "{}: {} instructions", arch.name(), bpf.len());
    }
    for rule in default_profile().syscalls {
        for name in rule.names {
            assert!(
                Arch::ALL.iter().any(|a| a.syscall(&name).is_some()),
                "{name} is on neither x86_64 nor aarch64"
            );
        }
    }
    // The seed's rules hold on both architectures wherever the call exists.
    for name in [
        "fchmod",
        "fchmodat",
        "fchmodat2",
        "clone",
        "clone3",
        "unshare",
        "ioctl",
        "keyctl",
        "ptrace",
        "userfaultfd",
        "read",
        "wait4",
        "signalfd4",
    ] {
        for arch in Arch::ALL {
            assert!(arch.syscall(name).is_some(), "{name} on {}", arch.name());
        }
    }
}

#[test]
fn the_default_profile_round_trips_through_its_json() {
    let json = default_profile_json();
    let back = Profile::from_json(&json).unwrap();
    assert_eq!(back, default_profile());
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["defaultAction"], "SCMP_ACT_ERRNO");
    assert_eq!(v["defaultErrnoRet"], 1);
    assert_eq!(v["syscalls"][0]["args"][0]["op"], "SCMP_CMP_MASKED_EQ");
    assert_eq!(v["syscalls"][0]["args"][0]["value"], 0o4000);
    assert_eq!(v["syscalls"][0]["args"][0]["valueTwo"], 0o4000);
    for arch in Arch::ALL {
        assert_eq!(compile(&back, arch).unwrap(), default_bpf(arch));
    }
}

// ------------------------------------------------------- compiling profiles

/// Every operator against a compiled filter, at the 32-bit boundaries where a
/// two-word comparison can go wrong, checked against `Op::holds`.
#[test]
fn every_operator_compiles_to_its_meaning_on_64_bit_values() {
    let values = [
        0u64,
        1,
        0x7fff_ffff,
        0xffff_ffff,
        0x1_0000_0000,
        0x1_0000_0001,
        0x8000_0000_0000_0000,
        u64::MAX - 1,
        u64::MAX,
    ];
    let ops = [Op::Ne, Op::Lt, Op::Le, Op::Eq, Op::Ge, Op::Gt];
    let mut cases: Vec<(Op, u64, u64)> = ops.iter().flat_map(|op| values.iter().map(move |v| (*op, *v, 0))).collect();
    for mask in [0xffu64, 0xffff_ffff, 0xffff_ffff_0000_0000, 0x8000_0000_0000_0001, u64::MAX] {
        for v2 in [0, mask, mask & 0x0000_0001_0000_0001, mask & 0xf0] {
            cases.push((Op::MaskedEq, mask, v2));
        }
    }
    for arch in Arch::ALL {
        for (op, value, value_two) in &cases {
            let p = Profile {
                default_action: Action::Allow,
                default_errno_ret: None,
                architectures: vec![],
                flags: vec![],
                listener_path: None,
                listener_metadata: None,
                syscalls: vec![SyscallRule {
                    names: vec!["read".into()],
                    action: Action::Errno,
                    errno_ret: Some(5),
                    args: vec![Arg {
                        index: 2,
                        value: *value,
                        value_two: *value_two,
                        op: *op,
                    }],
                }],
            };
            let bpf = compile(&p, arch).unwrap();
            for arg in values.iter().chain([0xf0, 0xff, 0x1_0000_00f0, 0x8000_0000_0000_0001].iter()) {
                let want = if op.holds(*arg, *value, *value_two) {
                    Verdict::Errno(5)
                } else {
                    ALLOW
                };
                assert_eq!(
                    verdict(&bpf, arch, "read", &[0, 0, *arg]),
                    want,
                    "{} {op:?} value={value:#x} valueTwo={value_two:#x} arg={arg:#x}",
                    arch.name()
                );
            }
        }
    }
}

#[test]
fn a_custom_profile_can_deny_mkdir_with_enospc() {
    let p = profile(
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 28}]}"#,
    );
    for arch in Arch::ALL {
        let bpf = compile(&p, arch).unwrap();
        assert_eq!(verdict(&bpf, arch, "mkdirat", &[]), Verdict::Errno(28));
        assert_eq!(verdict(&bpf, arch, "read", &[]), ALLOW);
        assert_eq!(verdict(&bpf, arch, "unlinkat", &[]), ALLOW);
    }
    let bpf = compile(&p, Arch::X86_64).unwrap();
    assert_eq!(verdict(&bpf, Arch::X86_64, "mkdir", &[]), Verdict::Errno(28));
}

#[test]
fn every_action_returns_what_the_kernel_expects() {
    let cases = [
        ("SCMP_ACT_KILL", "", Verdict::KillThread),
        ("SCMP_ACT_KILL_THREAD", "", Verdict::KillThread),
        ("SCMP_ACT_KILL_PROCESS", "", Verdict::KillProcess),
        ("SCMP_ACT_TRAP", "", Verdict::Trap(0)),
        ("SCMP_ACT_ERRNO", "", Verdict::Errno(1)),
        ("SCMP_ACT_ERRNO", r#", "errnoRet": 0"#, Verdict::Errno(0)),
        ("SCMP_ACT_ERRNO", r#", "errnoRet": 4095"#, Verdict::Errno(4095)),
        ("SCMP_ACT_TRACE", r#", "errnoRet": 7"#, Verdict::Trace(7)),
        ("SCMP_ACT_LOG", "", Verdict::Log),
        ("SCMP_ACT_ALLOW", "", ALLOW),
    ];
    for (action, extra, want) in cases {
        let default = if action == "SCMP_ACT_ALLOW" {
            "SCMP_ACT_LOG"
        } else {
            "SCMP_ACT_ALLOW"
        };
        let p = profile(&format!(
            r#"{{"defaultAction": "{default}", "syscalls": [{{"names": ["getpid"], "action": "{action}"{extra}}}]}}"#
        ));
        for arch in Arch::ALL {
            let bpf = compile(&p, arch).unwrap();
            assert_eq!(verdict(&bpf, arch, "getpid", &[]), want, "{action}{extra}");
            let other = if default == "SCMP_ACT_LOG" { Verdict::Log } else { ALLOW };
            assert_eq!(verdict(&bpf, arch, "getppid", &[]), other, "{action}: the default");
        }
    }
}

#[test]
fn conditional_rules_come_before_unconditional_ones_whatever_the_order() {
    // mkdirat(dirfd, path, mode): a sticky directory gets ENOSPC, others are allowed.
    for order in [[0, 1], [1, 0]] {
        let rules = [
            r#"{"names": ["mkdirat"], "action": "SCMP_ACT_ALLOW"}"#,
            r#"{"names": ["mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 28, "args": [{"index": 2, "value": 512, "valueTwo": 512, "op": "SCMP_CMP_MASKED_EQ"}]}"#,
        ];
        let p = profile(&format!(
            r#"{{"defaultAction": "SCMP_ACT_KILL_PROCESS", "syscalls": [{}, {}]}}"#,
            rules[order[0]], rules[order[1]]
        ));
        for arch in Arch::ALL {
            let bpf = compile(&p, arch).unwrap();
            assert_eq!(verdict(&bpf, arch, "mkdirat", &[3, 0, 0o1777]), Verdict::Errno(28));
            assert_eq!(verdict(&bpf, arch, "mkdirat", &[3, 0, 0o755]), ALLOW);
            assert_eq!(verdict(&bpf, arch, "read", &[]), Verdict::KillProcess);
        }
    }
}

#[test]
fn the_first_matching_conditional_rule_decides_and_conditions_are_anded() {
    let p = profile(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["write"], "action": "SCMP_ACT_ERRNO", "errnoRet": 9, "args": [
                {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}, {"index": 2, "value": 100, "op": "SCMP_CMP_GT"}]},
            {"names": ["write"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5, "args": [{"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}]},
            {"names": ["write"], "action": "SCMP_ACT_ERRNO", "errnoRet": 9, "args": [{"index": 0, "value": 7, "op": "SCMP_CMP_EQ"}]},
            {"names": ["read"], "action": "SCMP_ACT_TRAP"},
            {"names": ["close"], "action": "SCMP_ACT_ERRNO", "errnoRet": 9}
        ]}"#,
    );
    for arch in Arch::ALL {
        let bpf = compile(&p, arch).unwrap();
        assert_eq!(
            verdict(&bpf, arch, "write", &[2, 0, 101]),
            Verdict::Errno(9),
            "both conditions hold"
        );
        assert_eq!(
            verdict(&bpf, arch, "write", &[2, 0, 100]),
            Verdict::Errno(5),
            "only the second rule holds"
        );
        assert_eq!(
            verdict(&bpf, arch, "write", &[7, 0, 0]),
            Verdict::Errno(9),
            "a third run, same action as the first"
        );
        assert_eq!(verdict(&bpf, arch, "write", &[1, 0, 101]), ALLOW, "no rule holds");
        assert_eq!(verdict(&bpf, arch, "read", &[]), Verdict::Trap(0));
        assert_eq!(verdict(&bpf, arch, "close", &[]), Verdict::Errno(9));
        assert_eq!(verdict(&bpf, arch, "getpid", &[]), ALLOW);
        bpf_interp::check(&bpf.instructions().collect::<Vec<_>>()).unwrap();
    }
}

#[test]
fn names_from_other_architectures_compile_to_nothing() {
    let with = profile(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": ["_llseek", "socketcall", "arm_fadvise64_64", "read"], "action": "SCMP_ACT_ALLOW"}]}"#,
    );
    let without = profile(r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}"#);
    for arch in Arch::ALL {
        assert_eq!(compile(&with, arch).unwrap(), compile(&without, arch).unwrap());
    }
    // chmod is x86_64's only: on aarch64 the rule is empty and so is the filter.
    let chmod = profile(r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["chmod"], "action": "SCMP_ACT_ERRNO"}]}"#);
    let empty = profile(r#"{"defaultAction": "SCMP_ACT_ALLOW"}"#);
    assert_eq!(compile(&chmod, Arch::Aarch64).unwrap(), compile(&empty, Arch::Aarch64).unwrap());
    assert_ne!(compile(&chmod, Arch::X86_64).unwrap(), compile(&empty, Arch::X86_64).unwrap());
}

/// Four instructions on aarch64; on x86_64 four more, to load the number and
/// kill x32's calls (the guard matters most here: everything else is allowed).
#[test]
fn an_empty_profile_is_its_default_action_behind_the_arch_check() {
    let p = profile(r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": null, "architectures": null}"#);
    for arch in Arch::ALL {
        let bpf = compile(&p, arch).unwrap();
        assert_eq!(bpf.len(), empty_len(arch));
        assert_eq!(verdict(&bpf, arch, "read", &[]), ALLOW);
        assert_eq!(run_raw(&bpf, AUDIT_ARCH_I386, 3, [0; 6]), Verdict::KillProcess);
    }
    let bpf = compile(&p, Arch::X86_64).unwrap();
    assert_eq!(
        run_raw(&bpf, Arch::X86_64.audit_arch(), x32(272), [0x1000_0000, 0, 0, 0, 0, 0]),
        Verdict::KillProcess
    );
}

/// The length of a profile without rules: the arch check and a `ret`, and on
/// x86_64 the number loaded for the x32 guard and the guard.
fn empty_len(arch: Arch) -> usize {
    match arch {
        Arch::X86_64 => 8,
        Arch::Aarch64 => 4,
    }
}

#[test]
fn a_profile_too_large_for_the_kernel_is_refused() {
    // Each conditional rule on one 64-bit equality adds five instructions; 1000 of them do not fit.
    let rules: Vec<String> = (0..1000)
        .map(|i| format!(r#"{{"names": ["read"], "action": "SCMP_ACT_ERRNO", "errnoRet": {}, "args": [{{"index": 0, "value": {i}, "op": "SCMP_CMP_EQ"}}]}}"#, i % 2 + 1))
        .collect();
    let p = profile(&format!(
        r#"{{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{}]}}"#,
        rules.join(",")
    ));
    let err = compile(&p, Arch::X86_64).unwrap_err();
    assert!(matches!(err.0[0], SeccompError::TooLarge { .. }), "{err}");
    assert!(err.to_string().contains("at most 4096"), "{err}");
}

// ------------------------------------------ the compiler against a reference

/// What a profile says a call gets, read straight from its rules as the module
/// docs state them, without the compiler: the first rule with conditions whose
/// conditions all hold, in profile order; else the call's rule without
/// conditions; else the default action.
struct Reference<'p> {
    profile: &'p Profile,
    arch: Arch,
    /// The numbers each rule names on the architecture, rule by rule.
    numbers: Vec<Vec<u32>>,
}

impl<'p> Reference<'p> {
    fn new(profile: &'p Profile, arch: Arch) -> Reference<'p> {
        let numbers = profile
            .syscalls
            .iter()
            .map(|r| r.names.iter().filter_map(|n| arch.syscall(n)).collect())
            .collect();
        Reference { profile, arch, numbers }
    }

    /// The rules that name call `nr`, in profile order.
    fn rules(&self, nr: u32) -> impl Iterator<Item = &'p SyscallRule> + '_ {
        self.profile
            .syscalls
            .iter()
            .zip(&self.numbers)
            .filter(move |(_, n)| n.contains(&nr))
            .map(|(r, _)| r)
    }

    fn verdict(&self, nr: u32, args: &[u64; 6]) -> Verdict {
        // On x86_64, x32 and every number above it but -1: killed, whatever the rules.
        if self.arch == Arch::X86_64 && nr >= X32_SYSCALL_BIT && nr != u32::MAX {
            return Verdict::KillProcess;
        }
        let all_hold = |r: &SyscallRule| r.args.iter().all(|a| a.op.holds(args[a.index as usize], a.value, a.value_two));
        let rule = self
            .rules(nr)
            .find(|r| !r.args.is_empty() && all_hold(r))
            .or_else(|| self.rules(nr).find(|r| r.args.is_empty()));
        match rule {
            Some(r) => expected(r.action, r.errno_ret),
            None => expected(self.profile.default_action, self.profile.default_errno_ret),
        }
    }
}

/// The return value an action stands for, as seccomp(2) documents it.
fn expected(action: Action, errno_ret: Option<u32>) -> Verdict {
    let data = errno_ret.unwrap_or(1) as u16;
    match action {
        Action::Kill | Action::KillThread => Verdict::KillThread,
        Action::KillProcess => Verdict::KillProcess,
        Action::Trap => Verdict::Trap(0),
        Action::Errno => Verdict::Errno(data),
        Action::Trace => Verdict::Trace(data),
        Action::Allow => ALLOW,
        Action::Log => Verdict::Log,
        Action::Notify => Verdict::UserNotif,
    }
}

/// A small deterministic generator (xorshift64), for sampling argument vectors.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[(self.next() % from.len() as u64) as usize]
    }
}

/// Argument values around the boundaries of a condition: its values, one
/// either side, each with its high or low word changed alone, and for a masked
/// comparison the pattern with the bits outside the mask set and with the
/// lowest and highest bit of the mask flipped.
fn boundary_values(arg: &Arg) -> Vec<u64> {
    let mut values = vec![0, 1, u64::MAX, 0xffff_ffff, 0x1_0000_0000, 1 << 63];
    for v in [arg.value, arg.value_two] {
        values.extend([
            v,
            v.wrapping_add(1),
            v.wrapping_sub(1),
            v ^ 0xffff_ffff_0000_0000,
            v ^ 0x0000_0000_ffff_ffff,
            v ^ (1 << 32),
            v ^ (1 << 63),
            v.wrapping_add(1 << 32),
            v.wrapping_sub(1 << 32),
        ]);
    }
    if arg.op == Op::MaskedEq {
        let (mask, want) = (arg.value, arg.value_two);
        let lowest = mask & mask.wrapping_neg();
        let highest = if mask == 0 { 0 } else { 1 << (63 - mask.leading_zeros()) };
        values.extend([want | !mask, want ^ lowest, want ^ highest, want ^ mask, (want ^ lowest) | !mask]);
    }
    values.sort();
    values.dedup();
    values
}

/// Argument vectors for call `nr` that reach every boundary of its conditions:
/// for each of its rules with conditions, every combination of boundary values
/// (of every condition of the call on that argument) over the arguments the
/// rule tests, the others all zero or all ones; a sample when there are too
/// many combinations. Two vectors for a call without conditions.
fn argument_vectors(reference: &Reference<'_>, nr: u32, rng: &mut Rng) -> Vec<[u64; 6]> {
    const MOST: usize = 20_000;
    let rules: Vec<&SyscallRule> = reference.rules(nr).filter(|r| !r.args.is_empty()).collect();
    let mut per_index: [Vec<u64>; 6] = Default::default();
    for a in rules.iter().flat_map(|r| &r.args) {
        per_index[a.index as usize].extend(boundary_values(a));
    }
    for v in &mut per_index {
        v.sort();
        v.dedup();
    }
    let mut vectors = vec![[0; 6], [u64::MAX; 6]];
    for rule in rules {
        let indexes: Vec<usize> = rule.args.iter().map(|a| a.index as usize).collect();
        let combinations: usize = indexes.iter().map(|i| per_index[*i].len()).product();
        for base in [0, u64::MAX] {
            let fill = |choose: &mut dyn FnMut(&[u64]) -> u64| {
                let mut v = [base; 6];
                for i in &indexes {
                    v[*i] = choose(&per_index[*i]);
                }
                v
            };
            if combinations <= MOST {
                for mut n in 0..combinations {
                    vectors.push(fill(&mut |values| {
                        let v = values[n % values.len()];
                        n /= values.len();
                        v
                    }));
                }
            } else {
                for _ in 0..MOST {
                    vectors.push(fill(&mut |values| rng.pick(values)));
                }
            }
        }
    }
    vectors
}

/// The numbers to try on `arch`: every one up to 50 past the highest call the
/// architecture has, x32's (bit 30) for each of those the profile names, and
/// numbers far out, negative ones included.
fn numbers_to_try(reference: &Reference<'_>, arch: Arch) -> Vec<u32> {
    let table = match arch {
        Arch::X86_64 => syscalls::X86_64,
        Arch::Aarch64 => syscalls::AARCH64,
    };
    let highest = table.iter().map(|(_, n)| *n).max().unwrap();
    let mut numbers: Vec<u32> = (0..=highest + 50).collect();
    numbers.extend(reference.numbers.iter().flatten().map(|n| 0x4000_0000 | n));
    numbers.extend([
        1024,
        0xffff,
        0x3fff_ffff,
        0x4000_0000,
        0x4000_0000 + highest + 1,
        0x7fff_ffff,
        0x8000_0000,
        u32::MAX - 1,
        u32::MAX,
    ]);
    numbers
}

/// Checks the compiled `profile` against [`reference`] on both architectures,
/// for every number of [`numbers_to_try`] and every vector of
/// [`argument_vectors`]; a call through another ABI must be killed. Returns
/// the programs.
fn assert_equivalent(what: &str, profile: &Profile) -> Vec<Bpf> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut programs = Vec::new();
    for arch in Arch::ALL {
        let bpf = compile(profile, arch).unwrap_or_else(|e| panic!("{what}: {e}"));
        let prog: Vec<Instruction> = bpf.instructions().collect();
        let checked = bpf_interp::Checked::new(&prog).unwrap_or_else(|e| panic!("{what}, {}: {e}", arch.name()));
        let reference = Reference::new(profile, arch);
        for nr in numbers_to_try(&reference, arch) {
            for args in argument_vectors(&reference, nr, &mut rng) {
                let got = Verdict::from_ret(checked.run(&data(arch.audit_arch(), nr as i32, args)).unwrap().ret);
                let want = reference.verdict(nr, &args);
                assert_eq!(got, want, "{what}, {}: nr {nr:#x}, args {args:x?}", arch.name());
            }
        }
        for other in [AUDIT_ARCH_I386, AUDIT_ARCH_ARM, 0, u32::MAX] {
            for nr in [0, 3, 100, 0x4000_0000] {
                assert_eq!(run_raw(&bpf, other, nr, [0; 6]), Verdict::KillProcess, "{what}, {}", arch.name());
            }
        }
        programs.push(bpf);
    }
    programs
}

fn rule(names: &[&str], action: Action, errno_ret: Option<u32>, args: &[(u32, Op, u64, u64)]) -> SyscallRule {
    SyscallRule {
        names: names.iter().map(|n| n.to_string()).collect(),
        action,
        errno_ret,
        args: args
            .iter()
            .map(|&(index, op, value, value_two)| Arg {
                index,
                value,
                value_two,
                op,
            })
            .collect(),
    }
}

fn synthetic(default_action: Action, default_errno_ret: Option<u32>, syscalls: Vec<SyscallRule>) -> Profile {
    let p = Profile {
        default_action,
        default_errno_ret,
        architectures: vec![],
        flags: vec![],
        listener_path: None,
        listener_metadata: None,
        syscalls,
    };
    p.validate().unwrap_or_else(|e| panic!("{e}"));
    p
}

#[test]
fn the_default_profile_compiles_to_what_its_rules_say() {
    assert_equivalent("the default profile", &default_profile());
}

/// One action per call, of every kind, on neighbouring numbers with the same
/// and with different actions (the ranges of the search tree), and gaps.
#[test]
fn a_profile_of_many_actions_compiles_to_what_its_rules_say() {
    use Action::*;
    for (default, errno) in [(Kill, None), (Allow, None), (Errno, Some(0)), (Trace, Some(3))] {
        let p = synthetic(
            default,
            errno,
            vec![
                rule(&["read", "write", "close"], Allow, None, &[]),
                rule(&["open", "openat"], Errno, Some(2), &[]),
                rule(&["getpid"], Trap, None, &[]),
                rule(&["getppid"], Trace, Some(7), &[]),
                rule(&["gettid"], Log, None, &[]),
                rule(&["exit"], KillProcess, None, &[]),
                rule(&["exit_group"], Kill, None, &[]),
                rule(&["kill"], KillThread, None, &[]),
                rule(&["tkill"], Errno, Some(0), &[]),
                rule(&["tgkill"], Errno, Some(4095), &[]),
                // x86_64 102..=106, then 107 with another action.
                rule(&["getuid", "syslog", "getgid", "setuid", "setgid"], Allow, None, &[]),
                rule(&["geteuid"], Errno, None, &[]),
                rule(&["getegid"], Errno, Some(1), &[]),
                // The lowest and the highest numbers.
                rule(&["io_setup", "file_setattr"], Log, None, &[]),
            ],
        );
        assert_equivalent(&format!("many actions, default {default:?}"), &p);
    }
}

/// Several conditional rules per call with different actions, rules of
/// several conditions, every operator at the 32-bit boundaries, conditional
/// and unconditional rules for one call in either order, and calls that share
/// their rules.
#[test]
fn a_profile_of_conditional_rules_compiles_to_what_its_rules_say() {
    use Action::*;
    use Op::*;
    let p = synthetic(
        Errno,
        Some(1),
        vec![
            rule(&["write"], Errno, Some(9), &[(0, Eq, 2, 0), (2, Gt, 100, 0)]),
            rule(&["write"], Errno, Some(5), &[(0, Eq, 2, 0)]),
            rule(
                &["write"],
                Allow,
                None,
                &[(0, Ne, 7, 0), (1, MaskedEq, 0xff00_0000_0000_00ff, 0x1200_0000_0000_0034)],
            ),
            rule(&["write"], Trap, None, &[(3, Le, 0x1_0000_0000, 0)]),
            rule(&["write"], Errno, Some(9), &[(4, Ge, 0xffff_ffff_0000_0001, 0), (5, Lt, 5, 0)]),
            // read: its unconditional rule first in the profile, tried last.
            rule(&["read"], Allow, None, &[]),
            rule(&["read"], Errno, Some(5), &[(2, Ge, 1 << 40, 0)]),
            rule(&["read"], Allow, None, &[(0, Eq, 0, 0)]),
            rule(&["read"], KillProcess, None, &[(1, Lt, 0x8000_0000_0000_0000, 0)]),
            // Returns what the fallback returns: changes nothing.
            rule(&["read"], Allow, None, &[(3, Eq, 3, 0)]),
            // Two calls with the same rules.
            rule(&["close", "readv"], Log, None, &[(0, Gt, 0xffff_ffff, 0)]),
            rule(
                &["close", "readv"],
                Trace,
                Some(4),
                &[(0, Le, 0xffff_ffff, 0), (1, MaskedEq, 0xf0, 0x10)],
            ),
            // All six arguments at once.
            rule(
                &["mmap"],
                Allow,
                None,
                &[
                    (0, Eq, 0, 0),
                    (1, Ge, 4096, 0),
                    (2, MaskedEq, 0x4, 0),
                    (3, Ne, 0x1_0000_0000, 0),
                    (4, Lt, u64::MAX, 0),
                    (5, Le, 0, 0),
                ],
            ),
            // The edges of the 64-bit range.
            rule(&["ioctl"], Errno, Some(10), &[(0, Gt, u64::MAX - 1, 0)]),
            rule(&["ioctl"], Errno, Some(11), &[(0, Ge, u64::MAX, 0)]),
            rule(&["ioctl"], Errno, Some(12), &[(1, Lt, 1, 0)]),
            rule(&["ioctl"], Errno, Some(13), &[(2, Le, 0x7fff_ffff_ffff_ffff, 0)]),
            rule(&["ioctl"], Errno, Some(14), &[(3, MaskedEq, u64::MAX, 0xffff_ffff_0000_0000)]),
            rule(
                &["ioctl"],
                Errno,
                Some(15),
                &[(4, MaskedEq, 0xffff_ffff_0000_0000, 0x8000_0000_0000_0000)],
            ),
            rule(&["ioctl"], Errno, Some(16), &[(5, MaskedEq, 0, 0)]),
            rule(&["ioctl"], Allow, None, &[]),
            // The fchmodat pattern of the default, with another default.
            rule(&["fchmodat"], Errno, Some(1), &[(2, MaskedEq, 0o4000, 0o4000)]),
            rule(&["fchmodat"], Errno, Some(1), &[(2, MaskedEq, 0o2000, 0o2000)]),
            rule(&["fchmodat"], Allow, None, &[]),
            // A rule that returns what the fallback returns, before one that does not.
            rule(&["getpid"], Allow, None, &[(0, Eq, 5, 0)]),
            rule(&["getpid"], Errno, Some(8), &[(0, Ge, 5, 0)]),
            rule(&["getpid", "getppid"], Allow, None, &[]),
        ],
    );
    assert_equivalent("conditional rules", &p);
}

#[test]
fn profiles_without_rules_compile_to_what_they_say() {
    for (action, errno) in [
        (Action::Errno, Some(5)),
        (Action::Allow, None),
        (Action::KillProcess, None),
        (Action::Log, None),
    ] {
        let programs = assert_equivalent(&format!("empty, default {action:?}"), &synthetic(action, errno, vec![]));
        assert!(programs.iter().zip(Arch::ALL).all(|(p, arch)| p.len() == empty_len(arch)));
    }
}

/// Every call of both tables with conditional rules of its own: hundreds of
/// blocks, a tree far longer than a jt/jf can jump over.
#[test]
fn a_profile_where_everything_is_conditional_compiles_to_what_its_rules_say() {
    let mut names: Vec<&str> = syscalls::X86_64.iter().chain(syscalls::AARCH64).map(|(n, _)| *n).collect();
    names.sort();
    names.dedup();
    let actions = [
        (Action::Allow, None),
        (Action::Errno, Some(3)),
        (Action::Trap, None),
        (Action::Log, None),
    ];
    let syscalls = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let (action, errno) = actions[i % actions.len()];
            let i = i as u64;
            let condition = if i.is_multiple_of(2) {
                (i as u32 % 6, Op::Eq, i << 31, 0)
            } else {
                (i as u32 % 6, Op::MaskedEq, 0xff, i & 0xff)
            };
            rule(&[name], action, errno, &[condition])
        })
        .collect();
    let p = synthetic(Action::Errno, Some(1), syscalls);
    for bpf in assert_equivalent("everything conditional", &p) {
        // The tree reached its right halves through `ja`.
        let prog: Vec<Instruction> = bpf.instructions().collect();
        assert!(
            prog.windows(2)
                .any(|w| w[0].code == 0x35 && (w[0].jt, w[0].jf) == (0, 1) && w[1].code == 0x05),
            "no trampoline in {} instructions",
            prog.len()
        );
    }
}

/// Measured 201 instructions on both architectures when the compiler became a
/// binary search (the linear chain before it took 1766 and 1556), and 348 on
/// x86_64 once the socket families, the setuid file creation and the terminal
/// ioctls became conditional rules (351 with the x32 guard). Each gap in the allowlist costs two (a leaf
/// and a node), each conditional rule three to twelve; 420 leaves room for the
/// allowlist to grow while catching a return to a linear layout.
#[test]
fn the_default_program_stays_small() {
    for arch in Arch::ALL {
        let bpf = default_bpf(arch);
        assert!(bpf.len() <= 420, "{}: {} instructions", arch.name(), bpf.len());
    }
}

/// The instructions a call runs before its verdict: the prologue, a path down
/// the tree and a return for the calls whose verdict does not depend on their
/// arguments; a block's rules besides for those whose does.
#[test]
fn every_call_runs_few_instructions() {
    let profile = default_profile();
    let mut rng = Rng(1);
    for arch in Arch::ALL {
        let bpf = default_bpf(arch);
        let prog: Vec<Instruction> = bpf.instructions().collect();
        let checked = bpf_interp::Checked::new(&prog).unwrap();
        let reference = Reference::new(&profile, arch);
        let (mut most, mut most_conditional) = (0, 0);
        for nr in numbers_to_try(&reference, arch) {
            let conditional = reference.rules(nr).any(|r| !r.args.is_empty());
            for args in argument_vectors(&reference, nr, &mut rng) {
                let trace = checked.run(&data(arch.audit_arch(), nr as i32, args)).unwrap();
                if conditional {
                    most_conditional = most_conditional.max(trace.steps);
                } else {
                    assert!(!trace.read_args, "{}: {nr} reads its arguments", arch.name());
                    most = most.max(trace.steps);
                }
            }
        }
        // Measured: 11 on aarch64 (4 before the tree, at most 6 levels, the
        // return); on x86_64 12 for its calls (the x32 guard's `jge` falls
        // through) and 13 for -1 (which the guard's second test lets by);
        // 16 lets the tree grow to 8 times as many ranges.
        assert!(most <= 16, "{}: {most} instructions for an unconditional call", arch.name());
        // Measured: 37 on x86_64 (36 before the x32 guard), ioctl's six rules (seed's two, the three
        // terminal ioctls, no match) tried one after the other after the
        // tree's path and a `ja`; openat without O_CREAT runs fewer (each of
        // its four rules stops at its first condition).
        assert!(
            most_conditional <= 44,
            "{}: {most_conditional} instructions for a conditional call",
            arch.name()
        );
    }
}

// ------------------------------------------------- reading profiles: errors

#[test]
fn an_unknown_syscall_is_reported_with_its_path() {
    let errs = parse_err(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}, {"names": ["write", "mkdri"], "action": "SCMP_ACT_ALLOW"}]}"#,
    );
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].to_string(), r#"syscalls[1].names[1]: unknown syscall "mkdri""#);
    assert_eq!(errs[0].path(), Some("syscalls[1].names[1]"));
}

#[test]
fn bad_actions_operators_and_architectures_are_reported_with_their_paths() {
    let errs = parse_err(
        r#"{"defaultAction": "SCMP_ACT_DENY", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_Z80"],
            "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALOW"},
                         {"names": ["write"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQUAL"}]}]}"#,
    );
    let paths: Vec<_> = errs.iter().map(|e| e.path().unwrap()).collect();
    assert_eq!(paths, ["defaultAction", "syscalls[0].action", "syscalls[1].args[0].op"]);
    assert!(matches!(&errs[0], SeccompError::UnknownAction { value, .. } if value == "SCMP_ACT_DENY"));
    assert!(errs[1].to_string().contains("expected one of SCMP_ACT_KILL"), "{}", errs[1]);
    assert!(
        errs[2]
            .to_string()
            .starts_with(r#"syscalls[1].args[0].op: unknown operator "SCMP_CMP_EQUAL""#),
        "{}",
        errs[2]
    );
    // The architecture is checked once the shape is right.
    let errs = parse_err(r#"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_Z80"]}"#);
    assert_eq!(errs[0].path(), Some("architectures[1]"));
    assert!(
        errs[0].to_string().contains(r#"unknown architecture "SCMP_ARCH_Z80""#),
        "{}",
        errs[0]
    );
}

#[test]
fn what_tsbox_cannot_honour_is_refused_not_dropped() {
    let errs = parse_err(
        r#"{"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "agent.sock", "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_FAST"],
            "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}, {"names": ["mkdir", "sendmsg"], "action": "SCMP_ACT_NOTIFY"}]}"#,
    );
    let shown: Vec<_> = errs.iter().map(|e| e.to_string()).collect();
    assert_eq!(shown.len(), 5, "{shown:#?}");
    assert!(
        shown[0].starts_with("defaultAction: SCMP_ACT_NOTIFY is not supported by tsbox"),
        "{}",
        shown[0]
    );
    assert!(
        shown[1].starts_with("flags[1]: SECCOMP_FILTER_FLAG_LOG is not supported"),
        "{}",
        shown[1]
    );
    assert!(
        shown[2].starts_with(r#"flags[2]: unknown flag "SECCOMP_FILTER_FLAG_FAST""#),
        "{}",
        shown[2]
    );
    assert!(shown[3].starts_with("listenerPath: "), "{}", shown[3]);
    assert!(shown[3].contains("must be an absolute path"), "{}", shown[3]);
    assert!(
        shown[4].starts_with("syscalls[1].names[1]: SCMP_ACT_NOTIFY for sendmsg is not supported"),
        "{}",
        shown[4]
    );
    // A rule that notifies needs the agent's socket.
    let errs = parse_err(r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}"#);
    let shown: Vec<_> = errs.iter().map(|e| e.to_string()).collect();
    assert_eq!(shown.len(), 1, "{shown:#?}");
    assert!(shown[0].starts_with("syscalls[0].action: "), "{}", shown[0]);
    assert!(shown[0].contains("SCMP_ACT_NOTIFY needs listenerPath"), "{}", shown[0]);
}

/// Without an agent (tsbox run, the API) every SCMP_ACT_NOTIFY rule is a
/// problem of its own, listenerPath or not, listed with the others.
#[test]
fn notify_rules_without_an_agent_are_each_a_problem() {
    let text = r#"{"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock",
        "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}, {"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}, {"names": ["mkdri"], "action": "SCMP_ACT_ERRNO"}, {"names": ["chroot"], "action": "SCMP_ACT_NOTIFY"}]}"#;
    let found: Vec<_> = problems(text, Arch::X86_64, Agent::None).into_iter().map(|p| p.path).collect();
    assert_eq!(
        found,
        ["syscalls[1].action", "syscalls[2].names[0]", "syscalls[3].action"],
        "{found:?}"
    );
    let first = &problems(text, Arch::X86_64, Agent::None)[0];
    assert!(
        first
            .message
            .starts_with("SCMP_ACT_NOTIFY needs a seccomp agent, which tsbox hands a listener only in an OCI bundle"),
        "{}",
        first.message
    );
    // With one, only the unknown name.
    let given: Vec<_> = problems(text, Arch::X86_64, Agent::Given).into_iter().map(|p| p.path).collect();
    assert_eq!(given, ["syscalls[2].names[0]"]);
}

/// SCMP_ACT_NOTIFY with an agent's socket: the notified call returns
/// SECCOMP_RET_USER_NOTIF, the others their own actions.
#[test]
fn notify_rules_return_user_notif() {
    let text = r#"{"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock", "listenerMetadata": "m",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}, {"names": ["chroot"], "action": "SCMP_ACT_ERRNO"}]}"#;
    let p = profile(text);
    assert!(p.notifies());
    let bpf = compile(&p, Arch::X86_64).expect("compiles");
    assert_eq!(verdict(&bpf, Arch::X86_64, "mkdirat", &[]), Verdict::UserNotif);
    assert_eq!(verdict(&bpf, Arch::X86_64, "mkdir", &[]), Verdict::UserNotif);
    assert_eq!(verdict(&bpf, Arch::X86_64, "chroot", &[]), Verdict::Errno(1));
    assert_eq!(verdict(&bpf, Arch::X86_64, "read", &[]), ALLOW);
}

#[test]
fn wrong_types_missing_and_unknown_fields_are_reported_with_their_paths() {
    let shown = messages(
        r#"{"archMap": [], "syscalls": [
            {"names": "read", "action": "SCMP_ACT_ALLOW", "includes": {}},
            {"action": 3},
            {"names": ["read"], "action": "SCMP_ACT_ERRNO", "errnoRet": -1,
             "args": [{"index": 0, "value": 1.5, "op": "SCMP_CMP_EQ"}, {"index": "1", "value": "7", "op": "SCMP_CMP_EQ"}, 5]}]}"#,
    );
    assert_eq!(
        shown,
        [
            "archMap: unknown field (an OCI linux.seccomp object has defaultAction, defaultErrnoRet, architectures, flags, listenerPath, listenerMetadata and syscalls; a rule has names, action, errnoRet and args; an argument has index, value, valueTwo and op)",
            "defaultAction: required",
            "syscalls[0].includes: unknown field (an OCI linux.seccomp object has defaultAction, defaultErrnoRet, architectures, flags, listenerPath, listenerMetadata and syscalls; a rule has names, action, errnoRet and args; an argument has index, value, valueTwo and op)",
            "syscalls[0].names: expected an array",
            "syscalls[1].names: required",
            "syscalls[1].action: expected a string",
            "syscalls[2].errnoRet: expected an integer from 0 to 2^32-1",
            "syscalls[2].args[0].value: expected an integer from 0 to 2^64-1",
            "syscalls[2].args[1].index: expected an integer from 0 to 2^32-1",
            "syscalls[2].args[1].value: expected an integer from 0 to 2^64-1",
            "syscalls[2].args[2]: expected an object",
        ]
    );
    assert_eq!(messages("[]"), ["(profile): expected an object"]);
    let json = messages(r#"{"defaultAction": "SCMP_ACT_ERRNO",}"#);
    assert!(
        json[0].starts_with("(profile): not valid JSON: trailing comma at line 1"),
        "{json:?}"
    );
}

#[test]
fn values_out_of_range_or_meaningless_are_reported_with_their_paths() {
    let shown = messages(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1, "syscalls": [
            {"names": [], "action": "SCMP_ACT_ERRNO", "errnoRet": 5000},
            {"names": ["read"], "action": "SCMP_ACT_ALLOW", "errnoRet": 1},
            {"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [
                {"index": 6, "value": 0, "op": "SCMP_CMP_EQ"},
                {"index": 0, "value": 0, "valueTwo": 4, "op": "SCMP_CMP_EQ"},
                {"index": 0, "value": 3, "op": "SCMP_CMP_GE"},
                {"index": 1, "value": 3, "valueTwo": 4, "op": "SCMP_CMP_MASKED_EQ"}]}
        ]}"#,
    );
    assert_eq!(shown.len(), 8, "{shown:#?}");
    assert!(
        shown[0].starts_with("defaultErrnoRet: only SCMP_ACT_ERRNO and SCMP_ACT_TRACE take an errno"),
        "{}",
        shown[0]
    );
    assert_eq!(shown[1], "syscalls[0].names: must name at least one system call");
    assert_eq!(shown[2], "syscalls[0].errnoRet: 5000 is above the largest errno, 4095");
    assert!(shown[3].starts_with("syscalls[1].errnoRet: only SCMP_ACT_ERRNO"), "{}", shown[3]);
    assert!(
        shown[4].starts_with("syscalls[2].args[0].index: argument index 6 is out of range"),
        "{}",
        shown[4]
    );
    assert!(
        shown[5].starts_with("syscalls[2].args[1].valueTwo: only SCMP_CMP_MASKED_EQ uses valueTwo"),
        "{}",
        shown[5]
    );
    assert!(
        shown[6].starts_with("syscalls[2].args[2].index: a second condition on argument 0 (the first is syscalls[2].args[1])"),
        "{}",
        shown[6]
    );
    assert!(
        shown[7].starts_with("syscalls[2].args[3].valueTwo: 0x4 has bits outside the mask 0x3"),
        "{}",
        shown[7]
    );
}

#[test]
fn two_unconditional_actions_for_one_call_are_refused() {
    let shown = messages(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
            {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["write"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["close", "write"], "action": "SCMP_ACT_ERRNO", "errnoRet": 9},
            {"names": ["close"], "action": "SCMP_ACT_ERRNO", "errnoRet": 9},
            {"names": ["close"], "action": "SCMP_ACT_ERRNO"}]}"#,
    );
    assert_eq!(
        shown,
        [
            r#"syscalls[2].names[1]: "write" already has the unconditional action SCMP_ACT_ALLOW at syscalls[0]; a system call takes one action when no argument condition applies"#,
            r#"syscalls[4].names[0]: "close" already has the unconditional action SCMP_ACT_ERRNO(9) at syscalls[2]; a system call takes one action when no argument condition applies"#,
        ]
    );
}

#[test]
fn what_oci_writers_emit_is_accepted() {
    // As podman and containerd write it: nulls for empty lists, TSYNC, zero
    // valueTwo, an errnoRet of 0, names for many architectures.
    let p = profile(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1, "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "flags": ["SECCOMP_FILTER_FLAG_TSYNC"], "listenerPath": "", "syscalls": [
            {"names": ["accept", "_llseek", "socketcall"], "action": "SCMP_ACT_ALLOW", "args": null, "errnoRet": null},
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
            {"names": ["sync"], "action": "SCMP_ACT_ERRNO", "errnoRet": 0}]}"#,
    );
    for arch in Arch::ALL {
        let bpf = compile(&p, arch).unwrap();
        assert_eq!(verdict(&bpf, arch, "clone", &[17]), ALLOW);
        assert_eq!(verdict(&bpf, arch, "clone", &[0x1000_0011]), EPERM);
        assert_eq!(verdict(&bpf, arch, "clone3", &[]), ENOSYS);
        assert_eq!(verdict(&bpf, arch, "sync", &[]), Verdict::Errno(0));
    }
}

// ------------------------------------------------ tables and the wire format

#[test]
fn syscall_tables_are_sorted_and_disjoint_from_the_other_names() {
    for table in [syscalls::X86_64, syscalls::AARCH64] {
        assert!(table.windows(2).all(|w| w[0].0 < w[1].0), "a table is out of order");
        let mut numbers: Vec<u32> = table.iter().map(|(_, n)| *n).collect();
        numbers.sort();
        numbers.dedup();
        assert_eq!(numbers.len(), table.len(), "two names share a number");
    }
    assert!(syscalls::OTHER_ARCHES.windows(2).all(|w| w[0] < w[1]));
    for name in syscalls::OTHER_ARCHES {
        assert!(Arch::ALL.iter().all(|a| a.syscall(name).is_none()), "{name}");
        assert!(is_known_syscall(name));
    }
    assert!(!is_known_syscall("mkdri"));
    assert_eq!(Arch::X86_64.syscall("read"), Some(0));
    assert_eq!(Arch::Aarch64.syscall("read"), Some(63));
    assert_eq!(Arch::X86_64.syscall("file_setattr"), Some(469));
}

/// The host's table agrees with libc's numbers.
#[test]
fn the_host_table_matches_libc() {
    let host = Arch::host().unwrap();
    #[rustfmt::skip]
    let known: &[(&str, libc::c_long)] = &[
        ("read", libc::SYS_read), ("write", libc::SYS_write), ("openat", libc::SYS_openat), ("close", libc::SYS_close),
        ("clone", libc::SYS_clone), ("clone3", libc::SYS_clone3), ("unshare", libc::SYS_unshare), ("ioctl", libc::SYS_ioctl),
        ("fchmod", libc::SYS_fchmod), ("fchmodat", libc::SYS_fchmodat), ("keyctl", libc::SYS_keyctl), ("add_key", libc::SYS_add_key),
        ("request_key", libc::SYS_request_key), ("ptrace", libc::SYS_ptrace), ("mbind", libc::SYS_mbind),
        ("migrate_pages", libc::SYS_migrate_pages), ("move_pages", libc::SYS_move_pages), ("set_mempolicy", libc::SYS_set_mempolicy),
        ("userfaultfd", libc::SYS_userfaultfd), ("perf_event_open", libc::SYS_perf_event_open), ("wait4", libc::SYS_wait4),
        ("kill", libc::SYS_kill), ("signalfd4", libc::SYS_signalfd4), ("exit_group", libc::SYS_exit_group), ("execve", libc::SYS_execve),
        ("rt_sigreturn", libc::SYS_rt_sigreturn), ("seccomp", libc::SYS_seccomp), ("statx", libc::SYS_statx),
        ("newfstatat", libc::SYS_newfstatat), ("personality", libc::SYS_personality), ("mount", libc::SYS_mount),
        ("pidfd_open", libc::SYS_pidfd_open), ("close_range", libc::SYS_close_range), ("io_uring_setup", libc::SYS_io_uring_setup),
        ("landlock_restrict_self", libc::SYS_landlock_restrict_self), ("futex_waitv", libc::SYS_futex_waitv),
    ];
    for (name, number) in known {
        assert_eq!(host.syscall(name).map(i64::from), Some(*number), "{name}");
    }
    #[cfg(target_arch = "x86_64")]
    for (name, number) in [
        ("chmod", libc::SYS_chmod),
        ("fork", libc::SYS_fork),
        ("arch_prctl", libc::SYS_arch_prctl),
        ("stat", libc::SYS_stat),
    ] {
        assert_eq!(host.syscall(name).map(i64::from), Some(number), "{name}");
    }
}

#[test]
fn a_program_travels_as_hex_and_is_checked_on_arrival() {
    let bpf = default_bpf(Arch::X86_64);
    let json = serde_json::to_string(&bpf).unwrap();
    assert!(json.starts_with("\"200000000400"), "{}", &json[..20]); // LD arch: code 0x20, k 4
    let back: Bpf = serde_json::from_str(&json).unwrap();
    assert_eq!(back, bpf);
    assert_eq!(format!("{bpf:?}"), format!("Bpf({} instructions)", bpf.len()));
    // As a plan field: `seccomp: Option<Bpf>`, null or absent when unconfined.
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct PlanLike {
        version: u32,
        seccomp: Option<Bpf>,
    }
    let with = PlanLike {
        version: 1,
        seccomp: Some(bpf.clone()),
    };
    assert_eq!(serde_json::from_slice::<PlanLike>(&crate::encode(&with)).unwrap(), with);
    for unconfined in [r#"{"version": 1, "seccomp": null}"#, r#"{"version": 1}"#] {
        assert_eq!(serde_json::from_str::<PlanLike>(unconfined).unwrap().seccomp, None);
    }
    for bad in ["\"\"", "\"00\"", "\"0011223344556677zz\"", "\"001\"", "17"] {
        assert!(serde_json::from_str::<Bpf>(bad).is_err(), "{bad}");
    }
    assert!(Bpf::from_bytes(vec![0; 4097 * 8]).is_err());
    assert_eq!(
        Bpf::from_bytes(vec![6, 0, 0, 0, 0, 0, 0xff, 0x7f])
            .unwrap()
            .instructions()
            .next()
            .unwrap(),
        Instruction {
            code: 6,
            jt: 0,
            jf: 0,
            k: 0x7fff_0000
        }
    );
}

/// `problems` is what the addon hands TypeScript: each problem's path apart
/// from its message, from reading, checking and compiling alike.
#[test]
fn problems_are_paths_and_messages_from_every_stage() {
    let ok = r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 28}]}"#;
    assert_eq!(problems(ok, Arch::X86_64, Agent::Given), vec![]);
    let pair = |p: &Problem| (p.path.clone(), p.message.clone());
    // Not JSON: the whole profile is at fault.
    let broken: Vec<_> = problems(r#"{"defaultAction": "#, Arch::X86_64, Agent::Given)
        .iter()
        .map(pair)
        .collect();
    assert_eq!(broken.len(), 1);
    assert_eq!(broken[0].0, "(profile)");
    assert!(broken[0].1.starts_with("not valid JSON: "), "{:?}", broken[0]);
    // Reading and checking: every problem, in document order, none repeating its path.
    let bad = r#"{"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1, "syscalls": [{"names": ["mkdri"], "action": "SCMP_ACT_NOTIFY", "x": 1}]}"#;
    let found: Vec<_> = problems(bad, Arch::X86_64, Agent::Given).iter().map(pair).collect();
    assert_eq!(found.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(), ["syscalls[0].x"]);
    assert!(found[0].1.starts_with("unknown field"), "{found:?}");
    let bad =
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1, "syscalls": [{"names": ["mkdri"], "action": "SCMP_ACT_NOTIFY"}]}"#;
    let found: Vec<_> = problems(bad, Arch::X86_64, Agent::Given).iter().map(pair).collect();
    assert_eq!(
        found.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(),
        ["defaultErrnoRet", "syscalls[0].action", "syscalls[0].names[0]"]
    );
    assert_eq!(found[2].1, r#"unknown syscall "mkdri""#);
    assert!(found.iter().all(|(p, m)| !m.starts_with(p.as_str())), "{found:?}");
    // Compiling: a program over the kernel's limit has no path of its own.
    let rules: Vec<String> = (0..1000)
        .map(|i| format!(r#"{{"names": ["read"], "action": "SCMP_ACT_ERRNO", "errnoRet": {}, "args": [{{"index": 0, "value": {i}, "op": "SCMP_CMP_EQ"}}]}}"#, i % 2 + 1))
        .collect();
    let large = format!(r#"{{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{}]}}"#, rules.join(","));
    let found: Vec<_> = problems(&large, Arch::Aarch64, Agent::Given).iter().map(pair).collect();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].0, "(profile)");
    assert!(found[0].1.contains("at most 4096"), "{found:?}");
}

#[test]
fn relax_takes_podmans_profile_as_runc_does() {
    // As podman writes it: every architecture's names in one list, and calls
    // denied again without CAP_SYS_ADMIN that the long list allowed.
    let podman = r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38, "syscalls": [
        {"names": ["read", "setns", "syscall", "perf_event_open", "close"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["setns", "perf_event_open"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
        {"names": ["close"], "action": "SCMP_ACT_ERRNO", "errnoRet": 9},
        {"names": ["close"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5},
        {"names": ["read"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13, "args": [{"index": 0, "value": 99, "op": "SCMP_CMP_EQ"}]},
        {"names": ["syscall"], "action": "SCMP_ACT_ALLOW"}
    ]}"#;
    // tsbox's own check refuses it.
    assert!(!problems(podman, Arch::X86_64, Agent::Given).is_empty());
    let (relaxed, notes) = relax(podman).unwrap();
    assert!(
        problems(&relaxed, Arch::X86_64, Agent::Given).is_empty(),
        "{:?}",
        problems(&relaxed, Arch::X86_64, Agent::Given)
    );
    assert_eq!(
        notes,
        [
            r#"syscalls[0]: "syscall" is no system call tsbox knows: left out"#,
            r#"syscalls[0]: "setns" left to the stronger action of syscalls[1]"#,
            r#"syscalls[0]: "perf_event_open" left to the stronger action of syscalls[1]"#,
            r#"syscalls[0]: "close" left to the stronger action of syscalls[2]"#,
            r#"syscalls[3]: "close" keeps the action of syscalls[2]"#,
            r#"syscalls[5]: "syscall" is no system call tsbox knows: left out"#,
        ]
    );
    let bpf = compile(&profile(&relaxed), Arch::X86_64).unwrap();
    // The kernel's order: a denial beats an allowance; of two errnos, the first.
    assert_eq!(verdict(&bpf, Arch::X86_64, "setns", &[]), Verdict::Errno(1));
    assert_eq!(verdict(&bpf, Arch::X86_64, "perf_event_open", &[]), Verdict::Errno(1));
    assert_eq!(verdict(&bpf, Arch::X86_64, "close", &[]), Verdict::Errno(9));
    assert_eq!(verdict(&bpf, Arch::X86_64, "read", &[1]), Verdict::Allow);
    assert_eq!(verdict(&bpf, Arch::X86_64, "read", &[99]), Verdict::Errno(13));
    assert_eq!(verdict(&bpf, Arch::X86_64, "write", &[]), Verdict::Errno(38));
    // A profile with nothing to relax comes back as it was.
    let plain = r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO"}]}"#;
    assert_eq!(relax(plain).unwrap(), (plain.to_owned(), vec![]));
}
