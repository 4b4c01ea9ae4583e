//! The monitor's control socket: a SOCK_SEQPACKET unix socket in the
//! container's state directory, through which any process of the same user
//! (or root) execs into the container, signals it or waits for it, without
//! naming a pid. The state directory is not writable by the container, and
//! every peer's credentials are checked.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::sys::socket::{accept4, bind, getsockopt, listen, socket, sockopt, AddressFamily, Backlog, SockFlag, SockType};

use crate::channel::Channel;

pub struct Listener(OwnedFd);

impl Listener {
    /// Binds `path` (mode 0600; the directory is the container's state dir).
    pub fn bind(path: &str) -> nix::Result<Listener> {
        let fd = socket(
            AddressFamily::Unix,
            SockType::SeqPacket,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            None,
        )?;
        let _ = std::fs::remove_file(path);
        // SAFETY: umask only affects this single-threaded process's next file creation.
        let old = unsafe { libc::umask(0o177) };
        let bound = tsbox_core::wire::with_unix_addr(path, |addr| bind(fd.as_raw_fd(), addr));
        unsafe { libc::umask(old) };
        bound?;
        listen(&fd, Backlog::new(16)?)?;
        Ok(Listener(fd))
    }

    /// The next connection, if its peer may talk to this monitor: root, or
    /// the monitor's own user.
    pub fn accept(&self) -> Option<Channel> {
        let fd = accept4(self.0.as_raw_fd(), SockFlag::SOCK_CLOEXEC).ok()?;
        // SAFETY: a new descriptor from the kernel that nothing else owns.
        let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        let peer = getsockopt(&fd, sockopt::PeerCredentials).ok()?;
        let me = nix::unistd::geteuid().as_raw();
        if peer.uid() != 0 && peer.uid() != me {
            return None;
        }
        Some(Channel::from_owned(fd))
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}
