//! The sandbox half of the child's launch (phases `go` to `ready`): mounts and
//! pivot_root, the cgroup namespace, hostname and loopback, as root of the
//! container's user namespace.

use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::prctl;
use nix::unistd::sethostname;
use tsbox_core::{ChildMsg, Namespace, NetworkPhase, Report, SandboxPlan, Step, ToChild};

use super::{mounts, process};
use crate::channel::Channel;
use crate::fail::{Result, StepExt};
use crate::trace::{trace, Trace};

/// What [`build`] leaves for the process phase.
pub struct Built {
    /// The slave of its console, when the plan asks for one.
    pub console: Option<OwnedFd>,
    /// A pool's sandbox's `/proc/sys/kernel` (see [`super::ahead::fork_expected`]).
    pub pid_counter: Option<OwnedFd>,
}

/// Phases `go` to the sandbox's end: everything but the process.
pub fn build(plan: &SandboxPlan, chan: &Channel, tr: Trace) -> Result<Built> {
    // Phase 6: the id maps are written; the idmapped trees come with it.
    let trees = match chan.recv_fds::<ToChild>() {
        Ok(Some((ToChild::Go, trees))) => trees,
        Ok(Some((other, _))) => return Err(Report::new(Step::WaitGo, libc::EPROTO).detail(format!("expected go, got {other:?}"))),
        // The helper is gone: nobody to report to.
        // SAFETY: ends this process without running anything else.
        Ok(None) => unsafe { libc::_exit(125) },
        Err(e) => return Err(Report::new(Step::WaitGo, e.errno()).detail(e.to_string())),
    };
    let mut cgroup = CgroupEntry {
        chan,
        tr,
        unshare: plan.has(Namespace::Cgroup) && !plan.joins(Namespace::Cgroup),
        done: false,
    };
    // Host paths are opened with the caller's credentials (a 0700 directory
    // on the way stays reachable), before the ids change.
    let sources = if plan.has(Namespace::Mount) {
        Some(mounts::open_sources(plan, trees, &tr)?)
    } else {
        None
    };
    // The seccomp agent's socket, while its path is the host's and the ids the caller's.
    if let Some(path) = &plan.seccomp_listener {
        super::seccomp::connect_agent(path)?;
        trace!(tr, "seccomp: connected to the agent at {path}");
    }
    if plan.has(Namespace::User) {
        // Root of the new user namespace: files we create on the filesystems
        // we mount need an owner that is mapped there.
        process::set_ids_checked(0, 0, "become root in the user namespace")?;
    }
    // Through the host's /proc, before anything is mounted over it (or made
    // read-only): its net, ipc and uts entries are this process's namespaces'.
    for s in &plan.sysctl {
        write_sysctl(&s.key, &s.value)?;
        trace!(tr, "sysctl: {} = {}", s.key, s.value);
    }
    let pid_counter = match sources {
        Some(sources) => mounts::build_root(plan, sources, &tr, chan, &mut || cgroup.enter())?,
        None => None,
    };
    cgroup.enter()?;
    // An empty name leaves the one the namespace has (a joined one's, an
    // OCI bundle's without `hostname`).
    if plan.has(Namespace::Uts) && !plan.hostname.is_empty() {
        sethostname(&plan.hostname).step_path(Step::Sethostname, &plan.hostname, || "set the container's hostname".into())?;
        trace!(tr, "hostname: {}", plan.hostname);
        if let Some(domain) = &plan.domainname {
            // SAFETY: setdomainname reads `len` bytes of the name.
            if unsafe { libc::setdomainname(domain.as_ptr().cast(), domain.len()) } != 0 {
                return Err(Report::new(Step::Sethostname, nix::errno::Errno::last() as i32)
                    .path(domain.clone())
                    .detail("set the container's domain name"));
            }
            trace!(tr, "domainname: {domain}");
        }
    }
    // A joined network namespace is someone else's to configure. An own one
    // gets lo up here; Node's hook (phase `network`, the CNI plugins) made
    // its other interfaces already, and none of those plugins touches lo.
    if plan.has(Namespace::Net) && !plan.joins(Namespace::Net) {
        loopback_up().step_path(Step::Loopback, "lo", || "bring the loopback interface up".into())?;
        match plan.network {
            NetworkPhase::Loopback => trace!(tr, "network: lo up, no other interface"),
            NetworkPhase::Node => trace!(tr, "network: lo up, and the interfaces Node's hook made"),
        }
    }
    let console = plan.console.map(|size| super::pty::console(size, chan)).transpose()?;
    if let Some(size) = plan.console {
        trace!(tr, "console: a {}x{} pty on /dev/console, its master sent", size.cols, size.rows);
    }
    Ok(Built { console, pid_counter })
}

/// Phase 7: the sandbox is built. A descriptor of each of its namespaces goes
/// to the helper, which joins them for exec (never by pid number).
pub fn ready(plan: &SandboxPlan, chan: &Channel, tr: Trace) -> Result<()> {
    let mut namespaces = Vec::new();
    let mut fds: Vec<OwnedFd> = Vec::new();
    for ns in Namespace::ALL.iter().filter(|ns| plan.has(**ns)) {
        let path = format!("/proc/self/ns/{}", ns_file(*ns));
        match nix::fcntl::open(
            path.as_str(),
            nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        ) {
            Ok(fd) => {
                namespaces.push(*ns);
                fds.push(fd);
            }
            // Without /proc in the container (an OCI config may leave it
            // out) exec cannot join; the container still runs.
            Err(e) => trace!(tr, "ready: {path} cannot be opened ({e}); exec into this container will not work"),
        }
    }
    let raw: Vec<i32> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    chan.send_fds(&ChildMsg::Ready { namespaces }, &raw)
        .map_err(|e| Report::new(Step::WaitGo, e.errno()).detail(format!("report the sandbox ready: {e}")))?;
    trace!(tr, "ready: the sandbox waits for its process");
    // Until the process runs, nothing but the helper may look at us.
    let _ = prctl::set_dumpable(false);
    Ok(())
}

/// The name of a namespace under /proc/PID/ns.
pub fn ns_file(ns: Namespace) -> &'static str {
    match ns {
        Namespace::Mount => "mnt",
        other => other.name(),
    }
}

fn loopback_up() -> std::result::Result<(), nix::errno::Errno> {
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
    let sock = socket(AddressFamily::Inet, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None)?;
    // SAFETY: ifreq is plain old data; zeroed is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the flags member of req.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(nix::errno::Errno::last());
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(nix::errno::Errno::last());
        }
    }
    Ok(())
}

/// Entering the cgroup namespace (phase 4 on the child's side): the helper
/// places the child while it builds its mounts and says so with `placed`;
/// the child then unshares its cgroup namespace, whose root is that cgroup,
/// also for the cgroupfs it mounts next. Once, at the first cgroupfs mount or
/// after the mounts.
struct CgroupEntry<'a> {
    chan: &'a Channel,
    tr: Trace,
    unshare: bool,
    done: bool,
}

impl CgroupEntry<'_> {
    fn enter(&mut self) -> Result<()> {
        if self.done {
            return Ok(());
        }
        match self.chan.recv::<ToChild>() {
            Ok(Some(ToChild::Placed)) => {}
            // The helper is gone (it could not place us): nobody to report to.
            // SAFETY: ends this process without running anything else.
            Ok(None) => unsafe { libc::_exit(125) },
            Ok(Some(other)) => return Err(Report::new(Step::WaitGo, libc::EPROTO).detail(format!("expected placed, got {other:?}"))),
            Err(e) => return Err(Report::new(Step::WaitGo, e.errno()).detail(e.to_string())),
        }
        self.done = true;
        if self.unshare {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP)
                .step(Step::UnshareCgroup, || "enter a new cgroup namespace".into())?;
            let tr = self.tr;
            trace!(tr, "cgroup namespace: entered");
        }
        Ok(())
    }
}

/// Writes `value` to `/proc/sys/<key>`, its dots as slashes unless it has
/// slashes already (`net/ipv4/conf/eth0.1/forwarding`). The key was checked
/// by Node (a namespaced parameter, no `..`); it is still opened without
/// following a symlink at the end.
fn write_sysctl(key: &str, value: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    // Node checked it; checked again here, where a `..` would reach a host file.
    if key.is_empty() || key.starts_with('/') || key.split(['.', '/']).any(|p| p.is_empty() || p == "..") {
        return Err(Report::new(Step::Sysctl, libc::EINVAL)
            .path(key)
            .detail("not a kernel parameter name"));
    }
    let path = format!(
        "/proc/sys/{}",
        if key.contains('/') {
            key.to_string()
        } else {
            key.replace('.', "/")
        }
    );
    std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .map_err(|e| {
            Report::new(Step::Sysctl, e.raw_os_error().unwrap_or(0))
                .path(key)
                .detail(format!("write {value:?} to {path}"))
        })
}
