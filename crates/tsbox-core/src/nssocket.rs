//! A socket made inside another process's user and network namespaces, for
//! a process that cannot enter them itself: the Node process (the addon) has
//! threads, and setns(2) into a user namespace needs a single-threaded
//! caller. An ordinary user's container (pasta) keeps its egress allowlist's
//! rules in its own network namespace, and the reader of what they refuse
//! (crates/tsbox-napi/src/nflog.rs) needs a netlink socket of that
//! namespace.
//!
//! A raw clone of the caller (fork semantics, no atfork handler) joins the
//! user namespace (its owner, the caller's user, is capable in it), then the
//! network namespace, makes the socket there and sends it back over a
//! socketpair (SCM_RIGHTS), then exits. Between the clone and its exit the
//! child makes system calls only, with everything prepared by the parent:
//! no allocation, no lock (DESIGN.md: never ordinary Rust after a fork of a
//! multithreaded process). A socket keeps the namespace it was made in
//! wherever it is used from.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow};
use nix::sys::socket::{recvmsg, setsockopt, socketpair, sockopt, AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockType};
use nix::sys::stat::Mode;

/// What failed, with its errno.
#[derive(Debug, thiserror::Error)]
pub enum NsSocketError {
    #[error("open {path}")]
    Open {
        path: String,
        #[source]
        source: Errno,
    },
    #[error("socketpair (to receive the socket)")]
    Pair(#[source] Errno),
    #[error("clone (to enter the container's namespaces)")]
    Clone(#[source] Errno),
    #[error("setns into the container's user namespace")]
    SetnsUser(#[source] Errno),
    #[error("setns into the container's network namespace")]
    SetnsNet(#[source] Errno),
    #[error("socket in the container's network namespace")]
    Socket(#[source] Errno),
    #[error("receive the socket made in the container's namespaces")]
    Receive(#[source] Errno),
}

impl NsSocketError {
    /// The errno of the failure.
    pub fn errno(&self) -> Errno {
        match self {
            NsSocketError::Open { source, .. } => *source,
            NsSocketError::Pair(e)
            | NsSocketError::Clone(e)
            | NsSocketError::SetnsUser(e)
            | NsSocketError::SetnsNet(e)
            | NsSocketError::Socket(e)
            | NsSocketError::Receive(e) => *e,
        }
    }
}

/// The child's report: its first word, the step it failed at (0: the
/// socket comes with it); its second, the errno.
const SENT: i32 = 0;
const AT_SETNS_USER: i32 = 1;
const AT_SETNS_NET: i32 = 2;
const AT_SOCKET: i32 = 3;

/// Room for one descriptor's control message, 8-byte aligned, made by the
/// parent before the clone.
type ControlBuffer = [u64; 4];

/// The child of `socket_in`.
///
/// # Safety
/// Only in the child of a fork-like clone of a possibly multithreaded
/// process: it makes system calls only and never returns.
unsafe fn child(user: RawFd, net: RawFd, out: RawFd, domain: i32, kind: i32, protocol: i32, control: &mut ControlBuffer) -> ! {
    let report = |step: i32, errno: i32| -> ! {
        let word = [step, errno];
        libc::send(out, word.as_ptr().cast(), std::mem::size_of_val(&word), libc::MSG_NOSIGNAL);
        libc::_exit(1)
    };
    // The user namespace first: in it, this copy holds every capability
    // over the network namespace it owns.
    if libc::setns(user, libc::CLONE_NEWUSER) != 0 {
        report(AT_SETNS_USER, *libc::__errno_location());
    }
    if libc::setns(net, libc::CLONE_NEWNET) != 0 {
        report(AT_SETNS_NET, *libc::__errno_location());
    }
    let s = libc::socket(domain, kind | libc::SOCK_CLOEXEC, protocol);
    if s < 0 {
        report(AT_SOCKET, *libc::__errno_location());
    }
    let word = [SENT, 0];
    let mut iov = libc::iovec {
        iov_base: word.as_ptr() as *mut libc::c_void,
        iov_len: std::mem::size_of_val(&word),
    };
    let mut msg: libc::msghdr = std::mem::zeroed();
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as _;
    let c = libc::CMSG_FIRSTHDR(&msg);
    (*c).cmsg_level = libc::SOL_SOCKET;
    (*c).cmsg_type = libc::SCM_RIGHTS;
    (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
    std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<RawFd>(), s);
    let sent = libc::sendmsg(out, &msg, libc::MSG_NOSIGNAL);
    libc::_exit(if sent < 0 { 1 } else { 0 })
}

/// A socket (`domain`, `kind`, `protocol`; close-on-exec) of the network
/// namespace `netns`, owned by the user namespace `userns` (paths of nsfs
/// files, /proc/PID/ns/net or a descriptor's /proc/self/fd/N), which the
/// caller's user owns.
pub fn socket_in(userns: &str, netns: &str, domain: i32, kind: i32, protocol: i32) -> Result<OwnedFd, NsSocketError> {
    let ns = |path: &str| {
        open(path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty()).map_err(|source| NsSocketError::Open {
            path: path.to_owned(),
            source,
        })
    };
    let user = ns(userns)?;
    let net = ns(netns)?;
    let (here, there) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC).map_err(NsSocketError::Pair)?;
    let mut control: ControlBuffer = [0; 4];
    // Every signal blocked across the clone: the child inherits the mask, so
    // no handler of this process's (Node's, libuv's, which write to its
    // pipes) runs in the child; this thread's mask is restored after.
    let mut was = SigSet::empty();
    pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::all()), Some(&mut was)).map_err(NsSocketError::Clone)?;
    // SAFETY: a raw clone with fork semantics (SIGCHLD, nothing shared), so
    // that no atfork handler runs; the child runs `child` only, which makes
    // system calls and exits.
    let pid = unsafe { libc::syscall(libc::SYS_clone, libc::SIGCHLD as libc::c_ulong, 0usize, 0usize, 0usize, 0usize) };
    if pid != 0 {
        let cloned = if pid < 0 { Err(Errno::last()) } else { Ok(()) };
        let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&was), None);
        cloned.map_err(NsSocketError::Clone)?;
    }
    if pid == 0 {
        // SAFETY: this is the child of the clone above.
        unsafe {
            child(
                user.as_raw_fd(),
                net.as_raw_fd(),
                there.as_raw_fd(),
                domain,
                kind,
                protocol,
                &mut control,
            )
        }
    }
    drop(there);
    let got = receive(&here);
    let child = nix::unistd::Pid::from_raw(pid as i32);
    // Nothing came (a timeout, an error): the child is ended, not waited
    // for. (It is this process's unreaped child: its pid is not reused.)
    if got.is_err() {
        let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
    }
    // Reaped, whatever it sent: it exits right after sending.
    while let Err(Errno::EINTR) = nix::sys::wait::waitpid(child, None) {}
    got
}

/// The socket (or the failure) the child sent on `here`.
fn receive(here: &OwnedFd) -> Result<OwnedFd, NsSocketError> {
    // The child never blocks; a bound on the wait all the same.
    setsockopt(here, sockopt::ReceiveTimeout, &nix::sys::time::TimeVal::new(5, 0)).map_err(NsSocketError::Receive)?;
    let mut word = [0u8; 8];
    let mut iov = [std::io::IoSliceMut::new(&mut word)];
    let mut space = nix::cmsg_space!(RawFd);
    let (bytes, fds) = loop {
        match recvmsg::<()>(here.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC) {
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(NsSocketError::Receive(e)),
            Ok(msg) => {
                let mut fds = Vec::new();
                for c in msg.cmsgs().map_err(NsSocketError::Receive)? {
                    if let ControlMessageOwned::ScmRights(r) = c {
                        fds.extend(r);
                    }
                }
                break (msg.bytes, fds);
            }
        }
    };
    // SAFETY: each descriptor came with SCM_RIGHTS and is this process's now
    // (owned at once, so that none leaks on a failure below).
    let mut fds: Vec<OwnedFd> = fds.into_iter().map(|f| unsafe { OwnedFd::from_raw_fd(f) }).collect();
    let step = i32::from_ne_bytes([word[0], word[1], word[2], word[3]]);
    let errno = Errno::from_raw(i32::from_ne_bytes([word[4], word[5], word[6], word[7]]));
    match (bytes, step, fds.len()) {
        (8, SENT, 1) => Ok(fds.remove(0)),
        (8, AT_SETNS_USER, _) => Err(NsSocketError::SetnsUser(errno)),
        (8, AT_SETNS_NET, _) => Err(NsSocketError::SetnsNet(errno)),
        (8, AT_SOCKET, _) => Err(NsSocketError::Socket(errno)),
        // The child died before it could say (EPIPE), or sent what it never sends.
        (0, _, _) => Err(NsSocketError::Receive(Errno::EPIPE)),
        _ => Err(NsSocketError::Receive(Errno::EBADMSG)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    /// The network namespace a socket belongs to (SIOCGSKNS), by inode.
    fn netns_of(fd: &OwnedFd) -> u64 {
        const SIOCGSKNS: libc::c_ulong = 0x894C;
        // SAFETY: SIOCGSKNS returns a new descriptor of the socket's namespace.
        let ns = unsafe { libc::ioctl(fd.as_raw_fd(), SIOCGSKNS as _) };
        assert!(ns >= 0, "SIOCGSKNS: {}", Errno::last());
        // SAFETY: the descriptor just returned is ours.
        let ns = unsafe { OwnedFd::from_raw_fd(ns) };
        nix::sys::stat::fstat(&ns).unwrap().st_ino
    }

    fn inode(path: &str) -> Option<u64> {
        std::fs::metadata(path).ok().map(|m| m.ino())
    }

    #[test]
    fn a_socket_made_in_another_namespace_is_of_that_namespace() {
        // A user and network namespace of this user's (unshare's), which it may enter.
        let mut held = std::process::Command::new("unshare")
            .args(["--user", "--map-root-user", "--net", "sleep", "10"])
            .spawn()
            .expect("unshare (util-linux) runs");
        let path = |kind: &str| format!("/proc/{}/ns/{kind}", held.id());
        let ours = inode("/proc/self/ns/net").unwrap();
        // Until unshare has made them.
        let start = std::time::Instant::now();
        while inode(&path("net")).is_none_or(|i| i == ours) {
            assert!(start.elapsed().as_secs() < 5, "unshare made no namespace");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let theirs = inode(&path("net")).unwrap();
        let got = socket_in(&path("user"), &path("net"), libc::AF_UNIX, libc::SOCK_DGRAM, 0);
        let _ = held.kill();
        let _ = held.wait();
        let fd = got.unwrap();
        assert_eq!(netns_of(&fd), theirs);
        assert_ne!(netns_of(&fd), ours);
        // Close-on-exec, as every descriptor of the addon's.
        let flags = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_GETFD).unwrap();
        assert_ne!(flags & libc::FD_CLOEXEC, 0);
    }

    #[test]
    fn a_namespace_that_cannot_be_entered_names_the_step_and_errno() {
        // This process's own user namespace cannot be entered again (EINVAL).
        let e = socket_in("/proc/self/ns/user", "/proc/self/ns/net", libc::AF_UNIX, libc::SOCK_DGRAM, 0).unwrap_err();
        assert!(matches!(e, NsSocketError::SetnsUser(Errno::EINVAL)), "{e:?}");
        let e = socket_in("/no/such/ns", "/proc/self/ns/net", libc::AF_UNIX, libc::SOCK_DGRAM, 0).unwrap_err();
        assert_eq!(e.to_string(), "open /no/such/ns");
        assert_eq!(e.errno(), Errno::ENOENT);
        // A file that is no namespace: setns refuses it.
        let e = socket_in("/proc/self/stat", "/proc/self/ns/net", libc::AF_UNIX, libc::SOCK_DGRAM, 0).unwrap_err();
        assert!(matches!(e, NsSocketError::SetnsUser(Errno::EINVAL)), "{e:?}");
    }
}
