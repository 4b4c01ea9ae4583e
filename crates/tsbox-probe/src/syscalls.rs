//! `tsbox-probe syscalls`: tries the system calls the seed program's seccomp
//! rules are about, each with harmless arguments, and reports the errno each
//! one got (0 for success) — what a seccomp filter allows and refuses.

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
        libc::close(fd);
        libc::unlink(path.as_ptr());
        out.insert("unshare_user", outcome(libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUSER)));
        // TIOCSTI on whatever stdin is: without a terminal the kernel says ENOTTY,
        // with one it would inject; a filter says EPERM before either.
        let c: libc::c_char = 0;
        out.insert("ioctl_tiocsti", outcome(libc::syscall(libc::SYS_ioctl, 0, libc::TIOCSTI, &c)));
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
