//! `tsbox-probe syscalls`: tries the system calls the seed program's seccomp
//! rules are about, each with harmless arguments, and reports the errno each
//! one got (0 for success) — what a seccomp filter allows and refuses. On
//! x86_64, `x32_*` are calls made through the x32 ABI in a child, negative
//! when a signal ended it (-31: SIGSYS, a filter's KILL_PROCESS).

use std::collections::BTreeMap;

fn errno() -> i64 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0) as i64
}

/// The outcome of a raw syscall: 0 on success, else the errno.
fn outcome(r: libc::c_long) -> i64 {
    if r < 0 {
        errno()
    } else {
        0
    }
}

pub fn run() -> BTreeMap<&'static str, i64> {
    let mut out = BTreeMap::new();
    // First: once PTRACE_TRACEME below succeeds (no filter), the child's
    // SIGCHLD would stop this process for a tracer that never comes.
    #[cfg(target_arch = "x86_64")]
    {
        out.insert("x32_getpid", x32_in_child(39, 0));
        out.insert("x32_unshare_user", x32_in_child(272, libc::CLONE_NEWUSER as u64));
    }
    let path = c"/tmp/tsbox-probe-chmod";
    // SAFETY: plain syscalls with valid pointers or null where the kernel allows it.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC, 0o644);
        out.insert("chmod_0755", outcome(libc::chmod(path.as_ptr(), 0o755) as libc::c_long));
        out.insert("chmod_setuid", outcome(libc::chmod(path.as_ptr(), 0o4755) as libc::c_long));
        out.insert("chmod_setgid", outcome(libc::chmod(path.as_ptr(), 0o2755) as libc::c_long));
        out.insert("fchmod_setuid", outcome(libc::fchmod(fd, 0o4755) as libc::c_long));
        out.insert(
            "fchmodat_setgid",
            outcome(libc::fchmodat(libc::AT_FDCWD, path.as_ptr(), 0o2755, 0) as libc::c_long),
        );
        out.insert(
            "fchmodat2_setuid",
            outcome(libc::syscall(libc::SYS_fchmodat2, libc::AT_FDCWD, path.as_ptr(), 0o4755, 0)),
        );
        libc::close(fd);
        libc::unlink(path.as_ptr());
        // Making a setuid or setgid file without chmod: open with O_CREAT and
        // the bits in its mode, O_TMPFILE, mknod of a regular file.
        let created = c"/tmp/tsbox-probe-created";
        let fd = libc::open(created.as_ptr(), libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC, 0o4755);
        out.insert("open_creat_setuid", outcome(fd as libc::c_long));
        if fd >= 0 {
            libc::close(fd);
            libc::unlink(created.as_ptr());
        }
        let fd = libc::openat(
            libc::AT_FDCWD,
            created.as_ptr(),
            libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
            0o2755,
        );
        out.insert("openat_creat_setgid", outcome(fd as libc::c_long));
        if fd >= 0 {
            libc::close(fd);
            libc::unlink(created.as_ptr());
        }
        let fd = libc::open(c"/tmp".as_ptr(), libc::O_TMPFILE | libc::O_WRONLY | libc::O_CLOEXEC, 0o4700);
        out.insert("open_tmpfile_setuid", outcome(fd as libc::c_long));
        if fd >= 0 {
            libc::close(fd);
        }
        let r = libc::mknodat(libc::AT_FDCWD, created.as_ptr(), libc::S_IFREG | 0o4755, 0);
        out.insert("mknod_setuid", outcome(r as libc::c_long));
        if r == 0 {
            libc::unlink(created.as_ptr());
        }
        let fd = libc::open(created.as_ptr(), libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC, 0o755);
        out.insert("open_creat_0755", outcome(fd as libc::c_long));
        if fd >= 0 {
            libc::close(fd);
            libc::unlink(created.as_ptr());
        }
        // struct open_how: flags, mode, resolve.
        let how: [u64; 3] = [(libc::O_RDONLY | libc::O_CLOEXEC) as u64, 0, 0];
        let r = libc::syscall(libc::SYS_openat2, libc::AT_FDCWD, c"/".as_ptr(), how.as_ptr(), 24usize);
        out.insert("openat2", outcome(r));
        if r >= 0 {
            libc::close(r as i32);
        }
        // Socket families. A socket that opens is closed at once: nothing is
        // ever bound, connected or sent (above all on vsock, which reaches the
        // machine's host).
        for (name, family, kind) in [
            ("socket_unix", libc::AF_UNIX, libc::SOCK_STREAM),
            ("socket_inet", libc::AF_INET, libc::SOCK_DGRAM),
            ("socket_inet6", libc::AF_INET6, libc::SOCK_DGRAM),
            ("socket_netlink", libc::AF_NETLINK, libc::SOCK_RAW),
            ("socket_vsock", libc::AF_VSOCK, libc::SOCK_STREAM),
            ("socket_alg", libc::AF_ALG, libc::SOCK_SEQPACKET),
            ("socket_key", libc::AF_KEY, libc::SOCK_RAW),
            ("socket_tipc", libc::AF_TIPC, libc::SOCK_RDM),
        ] {
            let s = libc::socket(family, kind | libc::SOCK_CLOEXEC, 0);
            out.insert(name, outcome(s as libc::c_long));
            if s >= 0 {
                libc::close(s);
            }
        }
        out.insert("unshare_user", outcome(libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUSER)));
        // TIOCSTI on whatever stdin is: without a terminal the kernel says ENOTTY,
        // with one it would inject; a filter says EPERM before either.
        let c: libc::c_char = 0;
        out.insert("ioctl_tiocsti", outcome(libc::syscall(libc::SYS_ioctl, 0, libc::TIOCSTI, &c)));
        // The kernel reads the request as 32 bits: a filter that compares all
        // 64 lets this one through.
        out.insert(
            "ioctl_tiocsti_high_bits",
            outcome(libc::syscall(libc::SYS_ioctl, 0, 0x1_0000_0000u64 | libc::TIOCSTI, &c)),
        );
        // TIOCEXCL would lock a terminal the container was given (the
        // caller's, without -t) against its owner; TIOCNXCL undoes it at once.
        let r = libc::syscall(libc::SYS_ioctl, 0, libc::TIOCEXCL);
        out.insert("ioctl_tiocexcl", outcome(r));
        if r == 0 {
            libc::syscall(libc::SYS_ioctl, 0, libc::TIOCNXCL);
        }
        let mut ws: libc::winsize = std::mem::zeroed();
        out.insert(
            "ioctl_tiocgwinsz",
            outcome(libc::syscall(libc::SYS_ioctl, 0, libc::TIOCGWINSZ, &mut ws)),
        );
        out.insert(
            "keyctl",
            outcome(libc::syscall(libc::SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3, 0)),
        );
        out.insert(
            "add_key",
            outcome(libc::syscall(
                libc::SYS_add_key,
                c"user".as_ptr(),
                c"tsbox".as_ptr(),
                c"x".as_ptr(),
                1,
                -3,
            )),
        );
        out.insert(
            "request_key",
            outcome(libc::syscall(
                libc::SYS_request_key,
                c"user".as_ptr(),
                c"tsbox".as_ptr(),
                std::ptr::null::<libc::c_char>(),
                0,
            )),
        );
        out.insert("ptrace", outcome(libc::syscall(libc::SYS_ptrace, libc::PTRACE_TRACEME, 0, 0, 0)));
        out.insert("mbind", outcome(libc::syscall(libc::SYS_mbind, 0, 0, 0, 0, 0, 0)));
        out.insert("migrate_pages", outcome(libc::syscall(libc::SYS_migrate_pages, 0, 0, 0, 0)));
        out.insert("move_pages", outcome(libc::syscall(libc::SYS_move_pages, 0, 0, 0, 0, 0, 0)));
        out.insert("set_mempolicy", outcome(libc::syscall(libc::SYS_set_mempolicy, 0, 0, 0)));
        out.insert("userfaultfd", outcome(libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC)));
        let mut attr = [0u8; 128];
        out.insert(
            "perf_event_open",
            outcome(libc::syscall(libc::SYS_perf_event_open, attr.as_mut_ptr(), 0, -1, -1, 0)),
        );
        out.insert("clone3", outcome(libc::syscall(libc::SYS_clone3, std::ptr::null::<u8>(), 0)));
        out.insert("getpid", outcome(libc::syscall(libc::SYS_getpid)));
    }
    out
}

/// Makes x86_64 call `nr` through the x32 ABI (bit 30 set in the number), in
/// a child: a filter that kills x32 calls kills the process that makes one.
/// Returns the errno the call got (0 for success), or minus the signal that
/// ended the child. A kernel built without CONFIG_X86_X32_ABI answers ENOSYS
/// to every x32 call, but only after its seccomp filter has seen the call: what
/// this shows there is the filter's verdict, not the call's effect.
#[cfg(target_arch = "x86_64")]
fn x32_in_child(nr: libc::c_long, arg0: u64) -> i64 {
    const X32_SYSCALL_BIT: libc::c_long = 0x4000_0000;
    // SAFETY: the child makes three calls and _exits; it touches no lock a
    // thread of the parent could hold (the probe has no other thread).
    unsafe {
        match libc::fork() {
            0 => {
                // A killed process would dump core in the container's cwd.
                libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
                let r = libc::syscall(X32_SYSCALL_BIT | nr, arg0);
                libc::_exit(if r < 0 { errno() as i32 } else { 0 });
            }
            pid if pid > 0 => {
                let mut status = 0;
                if libc::waitpid(pid, &mut status, 0) != pid {
                    return errno();
                }
                if libc::WIFSIGNALED(status) {
                    -(libc::WTERMSIG(status) as i64)
                } else {
                    libc::WEXITSTATUS(status) as i64
                }
            }
            _ => errno(),
        }
    }
}
