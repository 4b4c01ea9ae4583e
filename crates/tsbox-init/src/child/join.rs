//! A process exec'd into a running container (helper/exec.rs): cloned in
//! its user and pid namespaces already, it joins the others through the
//! descriptors the container's first process gave the monitor at `ready` —
//! never by pid number, so there is no window for a recycled pid, and no
//! ptrace check against a PID 1 that is not dumpable (which is what made a
//! rootless exec fail). The mount namespace last (it changes the root), then
//! root of the user namespace before anything else: until then the process
//! has the helper's host ids.

use std::os::fd::{AsRawFd, OwnedFd};

use nix::sched::{setns, CloneFlags};
use tsbox_core::{Namespace, Report, Step};

use super::process::set_ids_checked;

/// The order namespaces are joined in.
const ORDER: [Namespace; 7] = [
    Namespace::User,
    Namespace::Ipc,
    Namespace::Uts,
    Namespace::Net,
    Namespace::Cgroup,
    Namespace::Pid,
    Namespace::Mount,
];

pub fn join(namespaces: &[(Namespace, OwnedFd)]) -> Result<(), Report> {
    // Root on the host until the ids change: nothing in the container may
    // read or ptrace this process (CVE-2016-9962's class) before it execs.
    // It is not dumpable from its clone on (its intermediate made itself so
    // before joining anything, helper/exec.rs); here is too late, it has
    // been in the container's pid namespace since then.
    for ns in ORDER {
        // Joined by the intermediate that cloned this process.
        if ns == Namespace::User || ns == Namespace::Pid {
            continue;
        }
        let Some((_, fd)) = namespaces.iter().find(|(n, _)| *n == ns) else {
            continue;
        };
        setns(fd, CloneFlags::empty()).map_err(|e| {
            Report::new(Step::Join, e as i32)
                .path(ns.name())
                .detail(format!("join the container's {} namespace (fd {})", ns.name(), fd.as_raw_fd()))
                .hint("the container must still be running")
        })?;
    }
    if namespaces.iter().any(|(n, _)| *n == Namespace::User) {
        set_ids_checked(0, 0, "become root in the container's user namespace")?;
    }
    Ok(())
}
