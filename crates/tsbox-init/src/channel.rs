//! One end of a SOCK_SEQPACKET socketpair carrying JSON messages, one per packet.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{recv, send, socketpair, AddressFamily, MsgFlags, SockFlag, SockType};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tsbox_core::MAX_PACKET;

pub struct Channel(OwnedFd);

#[derive(Debug)]
pub enum RecvError {
    Io(Errno),
    TooLarge(usize),
    Decode(serde_json::Error),
}

impl std::fmt::Display for RecvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecvError::Io(e) => write!(f, "recv: {e}"),
            RecvError::TooLarge(n) => write!(f, "a {n}-byte packet is over the {MAX_PACKET}-byte limit"),
            RecvError::Decode(e) => write!(f, "undecodable message: {e}"),
        }
    }
}

impl RecvError {
    pub fn errno(&self) -> i32 {
        match self {
            RecvError::Io(e) => *e as i32,
            RecvError::TooLarge(_) => libc::EMSGSIZE,
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

    pub fn send<T: Serialize>(&self, msg: &T) -> nix::Result<()> {
        let bytes = tsbox_core::encode(msg);
        loop {
            match send(self.0.as_raw_fd(), &bytes, MsgFlags::MSG_NOSIGNAL) {
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e),
                Ok(_) => return Ok(()),
            }
        }
    }

    /// Sends a message with descriptors attached (SCM_RIGHTS).
    pub fn send_fds<T: Serialize>(&self, msg: &T, fds: &[RawFd]) -> nix::Result<()> {
        use nix::sys::socket::{sendmsg, ControlMessage};
        let bytes = tsbox_core::encode(msg);
        let iov = [std::io::IoSlice::new(&bytes)];
        let cmsgs = if fds.is_empty() {
            vec![]
        } else {
            vec![ControlMessage::ScmRights(fds)]
        };
        loop {
            match sendmsg::<()>(self.0.as_raw_fd(), &iov, &cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e),
                Ok(_) => return Ok(()),
            }
        }
    }

    /// A small message and the descriptors that came with it.
    pub fn recv_fds<T: DeserializeOwned>(&self) -> Result<Option<(T, Vec<OwnedFd>)>, RecvError> {
        self.recv_fds_with(MsgFlags::empty())
    }

    /// As [`Channel::recv_fds`], but fails with EAGAIN instead of waiting.
    pub fn recv_fds_nonblocking<T: DeserializeOwned>(&self) -> Result<Option<(T, Vec<OwnedFd>)>, RecvError> {
        self.recv_fds_with(MsgFlags::MSG_DONTWAIT)
    }

    fn recv_fds_with<T: DeserializeOwned>(&self, extra: MsgFlags) -> Result<Option<(T, Vec<OwnedFd>)>, RecvError> {
        use nix::sys::socket::{recvmsg, ControlMessageOwned};
        let mut buf = vec![0u8; 4096];
        let mut cmsg = nix::cmsg_space!([RawFd; 253]);
        let (n, fds) = loop {
            let mut iov = [std::io::IoSliceMut::new(&mut buf)];
            match recvmsg::<()>(self.0.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC | extra) {
                // EINTR; or the peer exited with a message of ours unread (a
                // child that failed before it read `placed`): the kernel says
                // so once, ahead of what it sent before, which is still there.
                Err(Errno::EINTR | Errno::ECONNRESET) => continue,
                Err(e) => return Err(RecvError::Io(e)),
                Ok(msg) => {
                    let mut fds = Vec::new();
                    for c in msg.cmsgs().map_err(RecvError::Io)? {
                        if let ControlMessageOwned::ScmRights(list) = c {
                            // SAFETY: the kernel just installed these descriptors for us.
                            fds.extend(list.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
                        }
                    }
                    break (msg.bytes, fds);
                }
            }
        };
        if n == 0 {
            return Ok(None);
        }
        tsbox_core::decode(&buf[..n]).map(|m| Some((m, fds))).map_err(RecvError::Decode)
    }

    /// The next message, or `None` when the peer has closed its end.
    pub fn recv<T: DeserializeOwned>(&self) -> Result<Option<T>, RecvError> {
        let fd = self.0.as_raw_fd();
        // Peek with MSG_TRUNC for the packet's real size, then read it whole.
        let mut probe = [0u8; 1];
        let size = loop {
            match recv(fd, &mut probe, MsgFlags::MSG_PEEK | MsgFlags::MSG_TRUNC) {
                // As in recv_fds_with: ECONNRESET comes once, ahead of what is queued.
                Err(Errno::EINTR | Errno::ECONNRESET) => continue,
                Err(e) => return Err(RecvError::Io(e)),
                Ok(0) => return Ok(None),
                Ok(n) => break n,
            }
        };
        if size > MAX_PACKET {
            return Err(RecvError::TooLarge(size));
        }
        let mut buf = vec![0u8; size];
        let n = loop {
            match recv(fd, &mut buf, MsgFlags::empty()) {
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(RecvError::Io(e)),
                Ok(n) => break n,
            }
        };
        tsbox_core::decode(&buf[..n]).map(Some).map_err(RecvError::Decode)
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
