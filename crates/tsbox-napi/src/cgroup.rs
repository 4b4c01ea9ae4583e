//! Moving a process between v1 cgroups waits for an RCU grace period (the
//! write side of the kernel's cgroup_threadgroup_rwsem), and after an idle
//! spell that wait is several milliseconds. Moves that come while another is
//! in progress, or shortly after one, share its grace period. So a launch
//! moves this process into the cgroup it is already in, on a thread of its
//! own, as soon as it knows the helper will move the container: the wait
//! starts early and runs beside the rest of the launch.

use std::io::Write;

use napi_derive::napi;

/// Writes this process's pid to `procs` (a cgroup.procs of the cgroup it is
/// in) on a short-lived thread; returns at once. Errors are ignored: this
/// only saves time.
#[napi]
pub fn prewarm_cgroup_move(procs: String) {
    let _ = std::thread::Builder::new().name("tsbox-prewarm".into()).spawn(move || {
        if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&procs) {
            let _ = f.write_all(std::process::id().to_string().as_bytes());
        }
    });
}
