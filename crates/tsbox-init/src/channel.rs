//! One end of a SOCK_SEQPACKET socketpair carrying JSON messages, one per
//! packet (or per sealed memfd when large), framed by tsbox_core::wire as the
//! addon's end is.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tsbox_core::wire::{self, WireError};

pub struct Channel(OwnedFd);

#[derive(Debug)]
pub enum RecvError {
    Wire(WireError),
    Decode(serde_json::Error),
}

impl std::fmt::Display for RecvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecvError::Wire(e) => write!(f, "recv: {e}"),
            RecvError::Decode(e) => write!(f, "undecodable message: {e}"),
        }
    }
}

impl RecvError {
    pub fn errno(&self) -> i32 {
        match self {
            RecvError::Wire(e) => e.errno(),
            RecvError::Decode(_) => libc::EPROTO,
        }
    }
}

impl Channel {
    /// A connected pair; both ends close on exec.
    pub fn pair() -> nix::Result<(Channel, Channel)> {
        let (a, b) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)?;
        Ok((Channel(a), Channel(b)))
    }

    /// A channel over a connected socket this process owns.
    pub fn from_owned(fd: OwnedFd) -> Channel {
        Channel(fd)
    }

    /// Takes ownership of an inherited descriptor and marks it close-on-exec, so
    /// the container never inherits it.
    ///
    /// # Safety
    /// `fd` must be open and owned by nobody else in this process.
    pub unsafe fn from_raw_fd(fd: RawFd) -> nix::Result<Channel> {
        nix::fcntl::fcntl(
            BorrowedFd::borrow_raw(fd),
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        )?;
        Ok(Channel(OwnedFd::from_raw_fd(fd)))
    }

    pub fn send<T: Serialize>(&self, msg: &T) -> Result<(), WireError> {
        self.send_fds(msg, &[])
    }

    /// Sends a message with descriptors attached (SCM_RIGHTS).
    pub fn send_fds<T: Serialize>(&self, msg: &T, fds: &[RawFd]) -> Result<(), WireError> {
        wire::send(self.0.as_fd(), &tsbox_core::encode(msg), fds)
    }

    /// The next message and the descriptors that came with it, or `None`
    /// when the peer has closed its end.
    pub fn recv_fds<T: DeserializeOwned>(&self) -> Result<Option<(T, Vec<OwnedFd>)>, RecvError> {
        self.recv_with(false)
    }

    /// As [`Channel::recv_fds`], but fails with EAGAIN instead of waiting.
    pub fn recv_fds_nonblocking<T: DeserializeOwned>(&self) -> Result<Option<(T, Vec<OwnedFd>)>, RecvError> {
        self.recv_with(true)
    }

    /// The next message, or `None` when the peer has closed its end.
    pub fn recv<T: DeserializeOwned>(&self) -> Result<Option<T>, RecvError> {
        Ok(self.recv_with(false)?.map(|(m, _)| m))
    }

    fn recv_with<T: DeserializeOwned>(&self, nonblocking: bool) -> Result<Option<(T, Vec<OwnedFd>)>, RecvError> {
        match wire::recv_message(self.0.as_fd(), nonblocking).map_err(RecvError::Wire)? {
            None => Ok(None),
            Some((bytes, fds)) => tsbox_core::decode(&bytes).map(|m| Some((m, fds))).map_err(RecvError::Decode),
        }
    }
}

impl AsFd for Channel {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl AsRawFd for Channel {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}
