//! Exec into a running container: the helper joins the namespaces of the
//! container's PID 1 (one setns on its pidfd where the kernel allows, one per
//! namespace otherwise), then clones a plain child, which lands in the
//! container's pid namespace.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::sched::{setns, CloneFlags};
use nix::sys::stat::Mode;
use tsbox_core::{Namespace, Plan, Report, Step};

pub fn join(target: i32, plan: &Plan) -> Result<(), Report> {
    let fail = |e: Errno, what: String| {
        Report::new(Step::Join, e as i32)
            .path(target.to_string())
            .detail(what)
            .hint("the container must still be running; exec joins its PID 1's namespaces")
    };
    // SAFETY: pidfd_open returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, target, 0) };
    if fd < 0 {
        return Err(fail(Errno::last(), format!("open a pidfd for the container's PID 1 ({target})")));
    }
    // SAFETY: a new descriptor from the kernel.
    let pidfd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let flags = plan.namespaces.iter().fold(0u64, |f, ns| f | ns.clone_flag());
    match setns(&pidfd, CloneFlags::from_bits_truncate(flags as i32)) {
        Ok(()) => return Ok(()),
        // Kernels before 5.8 take only namespace descriptors.
        Err(Errno::EINVAL) => {}
        Err(e) => return Err(fail(e, "join the container's namespaces".into())),
    }
    // The user namespace first (it grants the rights for the others), the
    // mount namespace last (it changes our root).
    let order = [
        Namespace::User,
        Namespace::Ipc,
        Namespace::Uts,
        Namespace::Net,
        Namespace::Pid,
        Namespace::Cgroup,
        Namespace::Mount,
    ];
    let name = |ns: Namespace| match ns {
        Namespace::Mount => "mnt",
        other => other.name(),
    };
    let fds = order
        .iter()
        .filter(|ns| plan.has(**ns))
        .map(|ns| {
            let path = format!("/proc/{target}/ns/{}", name(*ns));
            open(path.as_str(), OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
                .map(|fd| (*ns, fd))
                .map_err(|e| fail(e, format!("open {path}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    drop(pidfd);
    for (ns, fd) in fds {
        setns(&fd, CloneFlags::empty())
            .map_err(|e| fail(e, format!("join the container's {} namespace (fd {})", ns.name(), fd.as_raw_fd())))?;
    }
    Ok(())
}
