//! Unpacking an image layer: a tar stream (gzip, zstd or plain, told apart by
//! its magic bytes) from a registry or an archive, which is hostile input.
//!
//! - Every path is cleaned lexically against the layer's root (`../x` and
//!   `/x` become `x`, as Docker and containerd read them), and every parent
//!   directory is resolved with openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS):
//!   a symlink in the layer (`etc -> /etc`, `up -> ../../..`) resolves inside
//!   the layer, never on the host. The last component is never followed:
//!   each entry is made with an `*at` call on its parent's descriptor
//!   (O_CREAT|O_EXCL|O_NOFOLLOW for files).
//! - A hard link's target is resolved the same way, and linkat is not told to
//!   follow it: a link can only name something already in the layer.
//! - Whiteouts become overlayfs's: `.wh.NAME` a 0:0 character device, and
//!   `.wh..wh..opq` the opaque xattr on its directory (trusted.* for an
//!   overlay mounted by host root, user.* for one mounted with userxattr in a
//!   user namespace, as tsbox's are).
//! - Device nodes are made only by root; otherwise they are skipped, with a note.
//! - Owners are kept only by root. setuid/setgid bits are kept only with the
//!   owner they were meant for (root); otherwise they are dropped, with a note.
//!   Extended attributes from the archive are kept only in `user.*`, and never
//!   `user.overlay.*`: a layer must not set overlayfs's own metadata
//!   (redirects, origins), nor file capabilities (`security.capability`),
//!   which a host root would then own.
//! - The total size and the number of entries are bounded: a bomb is refused
//!   before its data is written. So is what the tar reader would hold in
//!   memory: GNU long names and links and PAX headers (which the tar crate
//!   reads whole before handing over the entry they describe) may not exceed
//!   `max_header_bytes` before any one entry, PAX global headers are never
//!   read, and the uncompressed stream as a whole may not exceed what the
//!   limits allow (`Limits::max_stream`): a small gzip blob that expands
//!   without end is cut off there. The directories, whose modes are set
//!   last, are kept each once (a repeated entry replaces the metadata of the
//!   one before it, as with tar), their records bounded (`max_dir_bytes`).
//! - A layer stops, with a clear error, while its filesystem still has some
//!   space free (`Space`): what the limits let through (250 layers of
//!   64 GiB) cannot fill the host's disk.
//!
//! The caller unpacks into a fresh temporary directory and renames it into
//! place; on an error it removes the directory.

use std::cell::Cell;
use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use napi_derive::napi;
use sha2::{Digest, Sha256};

/// A failure, as TypeScript turns it into a TsboxError (step `unpack`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackError {
    pub errno: i32,
    /// The entry's path inside the layer (or the archive's, for a bad stream).
    pub path: String,
    pub detail: String,
    pub hint: Option<String>,
}

impl std::fmt::Display for UnpackError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} (errno {})", self.path, self.detail, self.errno)
    }
}

type Result<T> = std::result::Result<T, UnpackError>;

/// The report of a failed system call on `path` (as the report shows it: printable).
pub(crate) fn sys_err(path: &str, what: &str, e: io::Error) -> UnpackError {
    UnpackError {
        errno: e.raw_os_error().unwrap_or(0),
        path: path.to_string(),
        detail: format!("{what}: {e}"),
        hint: None,
    }
}

/// A name from the archive as an error shows it: control characters (the
/// terminal's escapes, newlines), bidirectional overrides and bytes that are
/// not UTF-8 escaped (`\x1b`, `\u{202e}`), a backslash doubled, and a long
/// one cut: a hostile name can neither drive the terminal nor break the
/// one-line report.
pub fn printable(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    const MAX: usize = 512;
    let mut out = String::new();
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                c if (c as u32) < 0x100 && c.is_control() => {
                    let _ = write!(out, "\\x{:02x}", c as u32);
                }
                c if c.is_control() || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') => {
                    let _ = write!(out, "\\u{{{:x}}}", c as u32);
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
        if out.len() > MAX {
            let mut cut = MAX;
            while !out.is_char_boundary(cut) {
                cut -= 1;
            }
            out.truncate(cut);
            out.push('…');
            break;
        }
    }
    out
}

fn last(path: &str, what: &str) -> UnpackError {
    sys_err(path, what, io::Error::last_os_error())
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most bytes of file data in the layer (the sizes the entries claim).
    pub max_bytes: u64,
    /// Most entries in the layer.
    pub max_entries: u64,
    /// Most bytes of tar metadata read before one entry: its header, GNU long
    /// name and link, PAX extended header, sparse map, the padding before it.
    pub max_header_bytes: u64,
    /// Most bytes the layer's directories take in memory until their modes
    /// are set, last: each distinct path once, with `DIR_RECORD` more for
    /// its record.
    pub max_dir_bytes: u64,
    /// Bytes the filesystem written to keeps free; None: `Space`'s default.
    pub min_free: Option<u64>,
}

/// The uncompressed stream an entry may take beyond its data: a header, the
/// padding to a block, and a PAX header or long name of an ordinary size.
const STREAM_PER_ENTRY: u64 = 8 * 512;

impl Limits {
    /// The usual cap on one entry's metadata (real ones are a few hundred bytes).
    pub const MAX_HEADER_BYTES: u64 = 1 << 20;
    /// The usual cap on the directories' records: a large real layer has
    /// some 100,000 directories of under 100 bytes each (some 20 MiB); a
    /// layer of the most entries, each a directory of the longest path the
    /// kernel resolves (4 KiB), would hold 8 GiB.
    pub const MAX_DIR_BYTES: u64 = 64 << 20;

    pub fn new(max_bytes: u64, max_entries: u64) -> Limits {
        Limits {
            max_bytes,
            max_entries,
            max_header_bytes: Limits::MAX_HEADER_BYTES,
            max_dir_bytes: Limits::MAX_DIR_BYTES,
            min_free: None,
        }
    }

    /// Most bytes of uncompressed tar stream: the data, plus a few blocks of
    /// metadata per entry, plus the end of the archive.
    pub fn max_stream(&self) -> u64 {
        self.max_bytes
            .saturating_add(self.max_entries.saturating_mul(STREAM_PER_ENTRY))
            .saturating_add(self.max_header_bytes)
    }
}

/// The free space of the filesystem a layer or an export is written to. A
/// layer or export that would leave it nearly full stops, with a clear
/// error, while the filesystem still has `margin` bytes (and a twentieth of
/// its inodes, up to `MIN_FREE_INODES`) free: a bomb that the size limits
/// let through (250 layers of 64 GiB each, a gzip of repeated bytes
/// expanding 1000 times) fails before the host's disk is full, not after.
/// statvfs is asked again only after `STEP` bytes or `INODE_STEP` inodes
/// taken since the last look: the check costs a subtraction per write.
pub(crate) struct Space {
    fd: RawFd,
    shown: String,
    hint: &'static str,
    min_free: Option<u64>,
    bytes_left: u64,
    inodes_left: u64,
}

impl Space {
    /// What a filesystem keeps free by default: 1 GiB, or a twentieth of a
    /// smaller one (a 4 GiB tmpfs keeps 200 MiB).
    pub const MIN_FREE: u64 = 1 << 30;
    const MIN_FREE_INODES: u64 = 100_000;
    const STEP: u64 = 64 << 20;
    const INODE_STEP: u64 = 4096;

    /// Looks once at the filesystem of the directory open at `fd` (which
    /// must stay open while this is used); `shown` names it in an error.
    pub(crate) fn new(fd: RawFd, shown: &str, hint: &'static str, min_free: Option<u64>) -> Result<Space> {
        let mut space = Space {
            fd,
            shown: shown.to_string(),
            hint,
            min_free,
            bytes_left: 0,
            inodes_left: 0,
        };
        space.look(0, 0)?;
        Ok(space)
    }

    /// Before writing `bytes` more of file data and making `inodes` more entries.
    pub(crate) fn take(&mut self, bytes: u64, inodes: u64) -> Result<()> {
        if bytes <= self.bytes_left && inodes <= self.inodes_left {
            self.bytes_left -= bytes;
            self.inodes_left -= inodes;
            return Ok(());
        }
        self.look(bytes, inodes)
    }

    fn look(&mut self, bytes: u64, inodes: u64) -> Result<()> {
        // SAFETY: fstatvfs into a zeroed struct, on a descriptor the caller keeps open.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::fstatvfs(self.fd, &mut st) } != 0 {
            return Err(last(&self.shown, "look at the free space of the filesystem"));
        }
        let unit = if st.f_frsize > 0 { st.f_frsize } else { st.f_bsize } as u64;
        let total = st.f_blocks as u64 * unit;
        // A filesystem that tells no size (some FUSE ones, an unlimited tmpfs) is not checked.
        self.bytes_left = Space::STEP;
        if total > 0 {
            let avail = st.f_bavail as u64 * unit;
            let margin = self.min_free.unwrap_or(Space::MIN_FREE.min(total / 20));
            let need = bytes.saturating_add(margin);
            if avail < need {
                return Err(self.short("space", "bytes", avail, bytes, margin));
            }
            self.bytes_left = (avail - need).min(Space::STEP);
        }
        self.inodes_left = Space::INODE_STEP;
        if st.f_files > 0 {
            let margin = Space::MIN_FREE_INODES.min(st.f_files as u64 / 20);
            let avail = st.f_favail as u64;
            let need = inodes.saturating_add(margin);
            if avail < need {
                return Err(self.short("inodes", "inodes", avail, inodes, margin));
            }
            self.inodes_left = (avail - need).min(Space::INODE_STEP);
        }
        Ok(())
    }

    fn short(&self, what: &str, unit: &str, avail: u64, more: u64, margin: u64) -> UnpackError {
        let detail = if more == 0 {
            format!("not enough {what}: the filesystem has {avail} {unit} free, less than the {margin} tsbox leaves free")
        } else {
            format!("not enough {what}: the filesystem has {avail} {unit} free; {more} more would leave less than the {margin} tsbox leaves free")
        };
        UnpackError {
            errno: libc::ENOSPC,
            path: self.shown.clone(),
            detail,
            hint: Some(self.hint.into()),
        }
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub entries: u64,
    pub bytes: u64,
    /// `sha256:<hex>` of the uncompressed tar stream: the layer's diff_id.
    pub diff_id: String,
    /// What was left out or changed, once per kind.
    pub notes: Vec<String>,
}

/// Unpacks the layer at `archive` into the directory `dest` (which must exist
/// and be empty). `privileged`: running as root (owners and devices kept).
pub fn unpack_file(archive: &Path, dest: &Path, limits: Limits, privileged: bool) -> Result<Outcome> {
    let shown = archive.display().to_string();
    let file = File::open(archive).map_err(|e| sys_err(&shown, "open the layer", e))?;
    let mut input = BufReader::with_capacity(1 << 16, file);
    let magic = {
        let buf = std::io::BufRead::fill_buf(&mut input).map_err(|e| sys_err(&shown, "read the layer", e))?;
        buf[..buf.len().min(4)].to_vec()
    };
    let reader: Box<dyn Read> = if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(input))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(input).map_err(|e| sys_err(&shown, "start the zstd decoder", e))?)
    } else {
        Box::new(input)
    };
    unpack(reader, dest, limits, privileged)
}

/// Copies `from` into `to`, leaving holes where a whole block is zeros (a
/// sparse file's, whose holes the tar reader gives as zeros, stays sparse);
/// what is written is taken from `space` first. `name`: the entry's, for an error.
fn copy_sparse(from: &mut impl Read, to: &mut File, space: &mut Space, name: &str) -> Result<u64> {
    use std::io::{Seek, SeekFrom};
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    loop {
        let got = match from.read(&mut buf) {
            Ok(0) => return Ok(n),
            Ok(got) => got,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(sys_err(name, "write the file", e)),
        };
        if got == buf.len() && buf.iter().all(|b| *b == 0) {
            to.seek(SeekFrom::Current(got as i64))
                .map_err(|e| sys_err(name, "write the file", e))?;
        } else {
            space.take(got as u64, 0)?;
            to.write_all(&buf[..got]).map_err(|e| sys_err(name, "write the file", e))?;
        }
        n += got as u64;
    }
}

/// Which bound a stream crossed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Crossed {
    Stream,
    Header,
}

/// What the loop and the guard share: how much has been read, and how much
/// the tar reader may still read before it hands over the next entry.
struct Budget {
    read: Cell<u64>,
    max_stream: u64,
    /// Some(n) while the tar reader looks for the next entry; None while the
    /// loop reads an entry's data (counted against `max_bytes` already).
    header_left: Cell<Option<u64>>,
    crossed: Cell<Option<Crossed>>,
}

/// Counts what is read through it, and fails a read past the stream's limit
/// or, while the tar reader reads headers, past the header limit: the tar
/// crate reads a long name or a PAX header into memory whole, whatever size
/// its header claims.
struct Guard<R> {
    inner: R,
    budget: Rc<Budget>,
}

impl<R: Read> Read for Guard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let b = &self.budget;
        if b.crossed.get().is_some() {
            return Err(io::Error::other("the layer crossed a size limit"));
        }
        // One byte more than allowed tells a stream at its limit from one past it.
        let mut room = b.max_stream.saturating_sub(b.read.get()).saturating_add(1);
        if let Some(left) = b.header_left.get() {
            room = room.min(left.saturating_add(1));
        }
        let len = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..len])?;
        b.read.set(b.read.get() + n as u64);
        if let Some(left) = b.header_left.get() {
            if n as u64 > left {
                b.crossed.set(Some(Crossed::Header));
                return Err(io::Error::other("a tar header is larger than allowed"));
            }
            b.header_left.set(Some(left - n as u64));
        }
        if b.read.get() > b.max_stream {
            b.crossed.set(Some(Crossed::Stream));
            return Err(io::Error::other("the uncompressed layer is larger than allowed"));
        }
        Ok(n)
    }
}

/// Hashes what is read through it.
struct Hashing<R> {
    inner: R,
    hash: Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

/// Unpacks an uncompressed tar stream into `dest`.
pub fn unpack(reader: impl Read, dest: &Path, limits: Limits, privileged: bool) -> Result<Outcome> {
    let shown = dest.display().to_string();
    let budget = Rc::new(Budget {
        read: Cell::new(0),
        max_stream: limits.max_stream(),
        header_left: Cell::new(None),
        crossed: Cell::new(None),
    });
    let hashing = Hashing {
        inner: Guard {
            inner: reader,
            budget: budget.clone(),
        },
        hash: Sha256::new(),
    };
    // Whatever error a crossed limit caused on the way (the tar reader's, a
    // write's), the limit is what is reported.
    unpack_guarded(hashing, &budget, dest, limits, privileged).map_err(|e| match budget.crossed.get() {
        Some(Crossed::Stream) => UnpackError {
            errno: libc::EFBIG,
            path: shown.clone(),
            detail: format!("the layer's uncompressed tar stream is larger than {} bytes", limits.max_stream()),
            hint: Some("a layer that expands this far is refused as a likely archive bomb".into()),
        },
        Some(Crossed::Header) => UnpackError {
            errno: libc::EFBIG,
            path: shown.clone(),
            detail: format!(
                "more than {} bytes of tar metadata (GNU long names or links, PAX headers) describe one entry",
                limits.max_header_bytes
            ),
            hint: Some(
                "refused before it is read into memory, as a likely archive bomb; a real layer's names and attributes are far smaller"
                    .into(),
            ),
        },
        None => e,
    })
}

fn unpack_guarded<R: Read>(
    mut hashing: Hashing<Guard<R>>,
    budget: &Budget,
    dest: &Path,
    limits: Limits,
    privileged: bool,
) -> Result<Outcome> {
    let shown = dest.display().to_string();
    let root = open_dir(libc::AT_FDCWD, dest).map_err(|e| sys_err(&shown, "open the layer directory", e))?;
    let mut space = Space::new(
        root.as_raw_fd(),
        &shown,
        "free space on that filesystem, or keep the image store on a larger one (TSBOX_STORAGE); a layer is stopped before it fills the disk",
        limits.min_free,
    )?;
    let mut out = Outcome::default();
    // Directories, with their mode, owner and time, set once everything is in them.
    let mut dirs = Dirs::default();
    let mut notes = Notes::default();
    {
        let mut archive = tar::Archive::new(&mut hashing);
        let mut entries = archive.entries().map_err(|e| bad_stream(&shown, e))?;
        loop {
            // What the tar reader reads to find the next entry is bounded;
            // the entry's data is bounded by the sizes counted below.
            budget.header_left.set(Some(limits.max_header_bytes));
            let Some(entry) = entries.next() else { break };
            budget.header_left.set(None);
            let mut entry = entry.map_err(|e| bad_stream(&shown, e))?;
            out.entries += 1;
            'entry: {
                if out.entries > limits.max_entries {
                    return Err(UnpackError {
                        errno: libc::EFBIG,
                        path: shown,
                        detail: format!("the layer has more than {} entries", limits.max_entries),
                        hint: Some("a layer this large is refused as a likely archive bomb".into()),
                    });
                }
                space.take(0, 1)?;
                // The entry's real size: a PAX size (files over 8 GiB) or a GNU
                // sparse file's, not the header's field. Counted before anything
                // may skip the entry: a skipped entry's data is still read.
                let size = entry.size();
                out.bytes = out.bytes.saturating_add(size);
                let raw = entry.path_bytes().into_owned();
                if out.bytes > limits.max_bytes {
                    return Err(UnpackError {
                        errno: libc::EFBIG,
                        path: printable(&raw),
                        detail: format!("the layer holds more than {} bytes", limits.max_bytes),
                        hint: Some("a layer this large is refused as a likely archive bomb".into()),
                    });
                }
                let entry_type = entry.header().entry_type();
                if entry_type.is_pax_global_extensions() {
                    // A PAX global header applies to nothing tsbox keeps (Docker
                    // and containerd ignore it too): never read into memory, its
                    // data is skipped. One of an absurd size is refused like any
                    // other oversized header.
                    if size > limits.max_header_bytes {
                        budget.crossed.set(Some(Crossed::Header));
                        return Err(bad_stream(&shown, io::Error::other("a PAX global header is larger than allowed")));
                    }
                    break 'entry;
                }
                let Some(rel) = clean(&raw) else { break 'entry };
                let name = printable(rel.as_os_str().as_bytes());
                let mode = entry.header().mode().unwrap_or(0o644) & 0o7777;
                let owner = if privileged {
                    Some((entry.header().uid().unwrap_or(0), entry.header().gid().unwrap_or(0)))
                } else {
                    None
                };
                let mtime = entry.header().mtime().unwrap_or(0);
                let xattrs = user_xattrs(&mut entry, &mut notes)?;

                let file_name = rel.file_name().map(|n| n.as_bytes().to_vec()).unwrap_or_default();
                let parent_rel = rel.parent().unwrap_or(Path::new(""));
                // Whiteouts: what a layer deletes from the ones below it.
                if file_name == b".wh..wh..opq" {
                    let dir = ensure_dir(&root, parent_rel)?;
                    for key in ["trusted.overlay.opaque", "user.overlay.opaque"] {
                        if let Err(e) = fsetxattr(dir.as_raw_fd(), key, b"y") {
                            if key.starts_with("user.") || privileged {
                                return Err(sys_err(&name, &format!("set {key} on the opaque directory"), e));
                            }
                        }
                    }
                    break 'entry;
                }
                if let Some(hidden) = file_name.strip_prefix(b".wh.") {
                    if hidden.is_empty() || hidden == b"." || hidden == b".." {
                        break 'entry;
                    }
                    let parent = ensure_dir(&root, parent_rel)?;
                    let target = cstr(hidden, &name)?;
                    remove_existing(&parent, &target, &name)?;
                    // SAFETY: mknodat on a descriptor and a C string we own.
                    if unsafe { libc::mknodat(parent.as_raw_fd(), target.as_ptr(), libc::S_IFCHR, 0) } != 0 {
                        return Err(last(&name, "make the overlay whiteout (a 0:0 character device)"));
                    }
                    break 'entry;
                }
                if rel.as_os_str().is_empty() {
                    // The layer's root itself ("./"): its mode applies to nothing of ours.
                    break 'entry;
                }
                let parent = ensure_dir(&root, parent_rel)?;
                let leaf = cstr(&file_name, &name)?;
                let pfd = parent.as_raw_fd();
                match entry_type {
                    tar::EntryType::Directory => {
                        // SAFETY: fstatat/mkdirat on our descriptor, never following the last component.
                        let existing = lstat_at(pfd, &leaf);
                        match existing {
                            Some(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => {}
                            Some(_) => {
                                remove_existing(&parent, &leaf, &name)?;
                                mkdir_at(pfd, &leaf, &name)?;
                            }
                            None => mkdir_at(pfd, &leaf, &name)?,
                        }
                        for (k, v) in &xattrs {
                            let d = open_dir(pfd, Path::new(OsStr::from_bytes(&file_name)))
                                .map_err(|e| sys_err(&name, "open the directory", e))?;
                            let _ = fsetxattr(d.as_raw_fd(), k, v);
                        }
                        dirs.record(&rel, DirMeta { mode, owner, mtime }, limits.max_dir_bytes, &name)?;
                        break 'entry;
                    }
                    tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                        remove_existing(&parent, &leaf, &name)?;
                        // SAFETY: openat on our descriptor; O_EXCL|O_NOFOLLOW: a new file, never a link's target.
                        let fd = unsafe {
                            libc::openat(
                                pfd,
                                leaf.as_ptr(),
                                libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                                0o600,
                            )
                        };
                        if fd < 0 {
                            return Err(last(&name, "create the file"));
                        }
                        // SAFETY: a descriptor openat just returned.
                        let mut file = unsafe { File::from_raw_fd(fd) };
                        copy_sparse(&mut (&mut entry).take(size), &mut file, &mut space, &name)?;
                        // Holes at the end: the file still has its full length.
                        file.set_len(size).map_err(|e| sys_err(&name, "set the file's length", e))?;
                        for (k, v) in &xattrs {
                            let _ = fsetxattr(file.as_raw_fd(), k, v);
                        }
                    }
                    tar::EntryType::Symlink => {
                        let Some(target) = entry.link_name_bytes() else { break 'entry };
                        let target = cstr(&target, &name)?;
                        remove_existing(&parent, &leaf, &name)?;
                        // SAFETY: symlinkat on our descriptor; the target is only text.
                        if unsafe { libc::symlinkat(target.as_ptr(), pfd, leaf.as_ptr()) } != 0 {
                            return Err(last(&name, "make the symlink"));
                        }
                    }
                    tar::EntryType::Link => {
                        let Some(target) = entry.link_name_bytes() else { break 'entry };
                        let Some(target_rel) = clean(&target) else { break 'entry };
                        let target_name = printable(target_rel.as_os_str().as_bytes());
                        let Some(target_leaf) = target_rel.file_name() else {
                            return Err(UnpackError {
                                errno: libc::EINVAL,
                                path: name,
                                detail: "a hard link to the layer's root".into(),
                                hint: None,
                            });
                        };
                        let tparent = resolve_dir(&root, target_rel.parent().unwrap_or(Path::new(""))).map_err(|e| UnpackError {
                            hint: Some("a hard link may only name a file earlier in the same layer".into()),
                            ..sys_err(&name, &format!("resolve the link's target {target_name} inside the layer"), e)
                        })?;
                        let tleaf = cstr(target_leaf.as_bytes(), &name)?;
                        remove_existing(&parent, &leaf, &name)?;
                        // SAFETY: linkat between our descriptors, without AT_SYMLINK_FOLLOW.
                        if unsafe { libc::linkat(tparent.as_raw_fd(), tleaf.as_ptr(), pfd, leaf.as_ptr(), 0) } != 0 {
                            return Err(UnpackError {
                                hint: Some("a hard link may only name a file earlier in the same layer".into()),
                                ..last(&name, &format!("hard-link to {target_name}"))
                            });
                        }
                        // A link shares its target's inode: nothing more to set.
                        break 'entry;
                    }
                    tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                        let kind = match entry_type {
                            tar::EntryType::Char => libc::S_IFCHR,
                            tar::EntryType::Block => libc::S_IFBLK,
                            _ => libc::S_IFIFO,
                        };
                        if kind != libc::S_IFIFO && !privileged {
                            notes.add("device nodes were skipped: only root may make them");
                            break 'entry;
                        }
                        let major = entry.header().device_major().ok().flatten().unwrap_or(0);
                        let minor = entry.header().device_minor().ok().flatten().unwrap_or(0);
                        remove_existing(&parent, &leaf, &name)?;
                        let dev = libc::makedev(major, minor);
                        // SAFETY: mknodat on our descriptor.
                        if unsafe { libc::mknodat(pfd, leaf.as_ptr(), kind | (mode & 0o777), dev) } != 0 {
                            return Err(last(&name, "make the device node"));
                        }
                    }
                    // PAX and GNU long-name records are read by the tar crate itself.
                    _ => {
                        notes.add("entries of unknown types were skipped");
                        break 'entry;
                    }
                }
                if entry_type != tar::EntryType::Symlink {
                    set_meta(pfd, &leaf, &name, mode, owner, &mut notes)?;
                } else if let Some((uid, gid)) = owner {
                    // SAFETY: fchownat without following the symlink.
                    unsafe { libc::fchownat(pfd, leaf.as_ptr(), uid as u32, gid as u32, libc::AT_SYMLINK_NOFOLLOW) };
                }
                set_mtime(pfd, &leaf, mtime);
            }
            // What was not read of the entry's data (skipped entries, a symlink's),
            // read here rather than by the tar reader under the header limit.
            io::copy(&mut entry, &mut io::sink()).map_err(|e| bad_stream(&shown, e))?;
        }
    }
    // Directories last: a read-only one is still filled, and its mode holds.
    for (rel, meta) in dirs.in_order() {
        let name = printable(rel.as_os_str().as_bytes());
        let parent = resolve_dir(&root, rel.parent().unwrap_or(Path::new(""))).map_err(|e| sys_err(&name, "resolve the directory", e))?;
        let leaf = cstr(rel.file_name().map(|n| n.as_bytes()).unwrap_or(b"."), &name)?;
        set_meta(parent.as_raw_fd(), &leaf, &name, meta.mode, meta.owner, &mut notes)?;
        set_mtime(parent.as_raw_fd(), &leaf, meta.mtime);
    }
    // The rest of the stream (the end blocks and any padding) counts in the diff_id.
    io::copy(&mut (&mut hashing).take(1 << 20), &mut io::sink()).map_err(|e| bad_stream(&shown, e))?;
    out.diff_id = format!("sha256:{}", hex(&hashing.hash.finalize()));
    out.notes = notes.0;
    Ok(out)
}

/// The uid and gid an entry keeps (only when root unpacks).
type Owner = Option<(u64, u64)>;

/// What a directory entry sets on its directory once the layer is in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DirMeta {
    mode: u32,
    owner: Owner,
    mtime: u64,
}

/// Memory a directory's record takes beside its path: the map's entry and
/// the allocation's overhead.
const DIR_RECORD: u64 = 96;

/// The layer's directories, each once, keyed by its path in the layer: a
/// repeated entry replaces the metadata of the one before it (the last one
/// wins, as with tar), and costs nothing more. What the records take in
/// memory is bounded (`Limits::max_dir_bytes`).
#[derive(Default)]
struct Dirs {
    map: std::collections::HashMap<PathBuf, (u64, DirMeta)>,
    bytes: u64,
}

impl Dirs {
    fn record(&mut self, rel: &Path, meta: DirMeta, max_bytes: u64, name: &str) -> Result<()> {
        if let Some(known) = self.map.get_mut(rel) {
            known.1 = meta;
            return Ok(());
        }
        self.bytes += rel.as_os_str().len() as u64 + DIR_RECORD;
        if self.bytes > max_bytes {
            return Err(UnpackError {
                errno: libc::EFBIG,
                path: name.to_string(),
                detail: format!("the layer's directories take more than {max_bytes} bytes to keep until their modes are set"),
                hint: Some("a layer with this many directories, or with paths this long, is refused as a likely archive bomb".into()),
            });
        }
        let seq = self.map.len() as u64;
        self.map.insert(rel.to_path_buf(), (seq, meta));
        Ok(())
    }

    /// Deepest first (a directory's mode is set after its subdirectories',
    /// which a read-only one would keep an ordinary user from reaching),
    /// then the last seen first.
    fn in_order(self) -> Vec<(PathBuf, DirMeta)> {
        let mut all: Vec<_> = self.map.into_iter().collect();
        all.sort_unstable_by_key(|(rel, (seq, _))| std::cmp::Reverse((rel.components().count(), *seq)));
        all.into_iter().map(|(rel, (_, meta))| (rel, meta)).collect()
    }
}

#[derive(Default)]
struct Notes(Vec<String>);

impl Notes {
    fn add(&mut self, note: &str) {
        if !self.0.iter().any(|n| n == note) {
            self.0.push(note.to_string());
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn bad_stream(path: &str, e: io::Error) -> UnpackError {
    UnpackError {
        errno: e.raw_os_error().unwrap_or(libc::EINVAL),
        path: path.to_string(),
        detail: format!("the layer is not a valid tar stream: {e}"),
        hint: Some("the blob may be damaged, or compressed in a way tsbox does not read (gzip, zstd and plain tar are)".into()),
    }
}

/// The entry's path relative to the layer's root, cleaned as if the layer's
/// root were `/`: `..` never climbs above it, `/` and `.` are dropped. None
/// for an empty or NUL-containing name.
pub fn clean(raw: &[u8]) -> Option<PathBuf> {
    if raw.contains(&0) {
        return None;
    }
    let mut out = PathBuf::new();
    for c in Path::new(OsStr::from_bytes(raw)).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Some(out)
}

fn cstr(bytes: &[u8], name: &str) -> Result<CString> {
    CString::new(bytes).map_err(|_| UnpackError {
        errno: libc::EINVAL,
        path: name.to_string(),
        detail: "a name with a NUL byte".into(),
        hint: None,
    })
}

fn open_dir(at: RawFd, path: &Path) -> io::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: openat with a C string we own.
    let fd = unsafe {
        libc::openat(
            at,
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a descriptor openat just returned.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens the directory `rel` of the layer, resolving every symlink on the
/// way as if the layer were the root (openat2 RESOLVE_IN_ROOT).
fn resolve_dir(root: &OwnedFd, rel: &Path) -> io::Result<OwnedFd> {
    open_dir_resolved(root.as_raw_fd(), rel, libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS)
}

/// Opens the directory `rel` below the one open at `root`, resolved as
/// `resolve` (openat2's RESOLVE_* flags) says; an empty `rel` is `root`.
pub(crate) fn open_dir_resolved(root: RawFd, rel: &Path, resolve: u64) -> io::Result<OwnedFd> {
    if rel.as_os_str().is_empty() {
        // SAFETY: dup of a descriptor the caller keeps open.
        let fd = unsafe { libc::fcntl(root, libc::F_DUPFD_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a descriptor fcntl just returned.
        return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    let c = CString::new(rel.as_os_str().as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // struct open_how (linux/openat2.h): flags, mode, resolve, each a u64.
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }
    let how = OpenHow {
        flags: (libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve,
    };
    loop {
        // SAFETY: openat2 with a struct and a C string we own.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                root,
                c.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if fd >= 0 {
            // SAFETY: a descriptor openat2 just returned.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) });
        }
        let e = io::Error::last_os_error();
        // openat2 asks for a retry when a rename raced the lookup.
        if e.raw_os_error() != Some(libc::EAGAIN) {
            return Err(e);
        }
    }
}

/// The directory `rel` of the layer, made (0755) where it is missing. A
/// symlink on the way whose target is missing has its target made, resolved
/// inside the layer as openat2 would (as Docker's MkdirAll in a scoped root).
fn ensure_dir(root: &OwnedFd, rel: &Path) -> Result<OwnedFd> {
    ensure_dir_depth(root, rel, 0)
}

fn ensure_dir_depth(root: &OwnedFd, rel: &Path, depth: u32) -> Result<OwnedFd> {
    let name = printable(rel.as_os_str().as_bytes());
    match resolve_dir(root, rel) {
        Ok(fd) => return Ok(fd),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) && depth < 40 => {}
        Err(e) => return Err(sys_err(&name, "resolve the parent directory inside the layer", e)),
    }
    let parent_rel = rel.parent().unwrap_or(Path::new(""));
    let parent = ensure_dir_depth(root, parent_rel, depth + 1)?;
    let leaf = cstr(rel.file_name().map(|n| n.as_bytes()).unwrap_or(b"."), &name)?;
    if let Some(st) = lstat_at(parent.as_raw_fd(), &leaf) {
        if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
            let mut buf = vec![0u8; libc::PATH_MAX as usize];
            // SAFETY: readlinkat into a buffer we own.
            let n = unsafe { libc::readlinkat(parent.as_raw_fd(), leaf.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 {
                return Err(last(&name, "read the symlink on the way"));
            }
            let target = &buf[..n as usize];
            let joined = if target.starts_with(b"/") {
                target.to_vec()
            } else {
                [parent_rel.as_os_str().as_bytes(), b"/", target].concat()
            };
            let Some(next) = clean(&joined) else {
                return Err(sys_err(
                    &name,
                    "follow the symlink on the way",
                    io::Error::from_raw_os_error(libc::EINVAL),
                ));
            };
            ensure_dir_depth(root, &next, depth + 1)?;
        } else {
            return Err(sys_err(
                &name,
                "a parent of an entry is not a directory",
                io::Error::from_raw_os_error(libc::ENOTDIR),
            ));
        }
    } else {
        mkdir_at(parent.as_raw_fd(), &leaf, &name)?;
    }
    resolve_dir(root, rel).map_err(|e| sys_err(&name, "open the directory just made", e))
}

fn mkdir_at(at: RawFd, leaf: &CString, name: &str) -> Result<()> {
    // SAFETY: mkdirat on our descriptor.
    if unsafe { libc::mkdirat(at, leaf.as_ptr(), 0o755) } != 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EEXIST) {
            return Err(sys_err(name, "make the directory", e));
        }
    }
    Ok(())
}

/// What is at `leaf` in the directory open at `at`, its last component never followed (flatten's too).
pub(crate) fn lstat_at(at: RawFd, leaf: &CString) -> Option<libc::stat> {
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstatat into a zeroed struct, never following the last component.
    (unsafe { libc::fstatat(at, leaf.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) } == 0).then_some(st)
}

/// Removes what is at `leaf` (a later entry replaces an earlier one); an
/// existing directory is kept only for a directory, by the caller.
fn remove_existing(parent: &OwnedFd, leaf: &CString, name: &str) -> Result<()> {
    let Some(st) = lstat_at(parent.as_raw_fd(), leaf) else {
        return Ok(());
    };
    let flags = if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        libc::AT_REMOVEDIR
    } else {
        0
    };
    // SAFETY: unlinkat on our descriptor.
    if unsafe { libc::unlinkat(parent.as_raw_fd(), leaf.as_ptr(), flags) } != 0 {
        return Err(last(name, "replace an earlier entry of the same name"));
    }
    Ok(())
}

fn set_meta(at: RawFd, leaf: &CString, name: &str, mode: u32, owner: Owner, notes: &mut Notes) -> Result<()> {
    // A later entry may have replaced a directory by a symlink (`a/`, then
    // `a -> /etc`): fchmodat follows the last component, and would change
    // the host's. Nothing here is set through a symlink.
    match lstat_at(at, leaf) {
        Some(st) if st.st_mode & libc::S_IFMT != libc::S_IFLNK => {}
        _ => return Ok(()),
    }
    let mut mode = mode;
    if let Some((uid, gid)) = owner {
        // SAFETY: fchownat without following; before chmod, which chown would undo for setuid bits.
        if unsafe { libc::fchownat(at, leaf.as_ptr(), uid as u32, gid as u32, libc::AT_SYMLINK_NOFOLLOW) } != 0 {
            return Err(last(name, "set the owner"));
        }
    } else if mode & 0o6000 != 0 {
        // The file is the caller's, not the owner the bit was meant for.
        mode &= !0o6000;
        notes.add("setuid/setgid bits were dropped: the files are owned by the unpacking user, not by their owners in the image");
    }
    // SAFETY: fchmodat on our descriptor (the entry is never a symlink here).
    if unsafe { libc::fchmodat(at, leaf.as_ptr(), mode, 0) } != 0 {
        return Err(last(name, "set the mode"));
    }
    Ok(())
}

fn set_mtime(at: RawFd, leaf: &CString, mtime: u64) {
    let t = libc::timespec {
        tv_sec: mtime as libc::time_t,
        tv_nsec: 0,
    };
    let times = [t, t];
    // SAFETY: utimensat without following the last component; a failure only loses the time.
    unsafe { libc::utimensat(at, leaf.as_ptr(), times.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) };
}

fn fsetxattr(fd: RawFd, key: &str, value: &[u8]) -> io::Result<()> {
    let k = CString::new(key).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: fsetxattr on our descriptor with buffers we own.
    if unsafe { libc::fsetxattr(fd, k.as_ptr(), value.as_ptr().cast(), value.len(), 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The entry's extended attributes (PAX `SCHILY.xattr.*`) that a layer may
/// set: `user.*` outside `user.overlay.*`. The rest is noted and left out.
fn user_xattrs<R: Read>(entry: &mut tar::Entry<'_, R>, notes: &mut Notes) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    // For a PAX header the tar reader hands over as an entry of its own (a
    // global one, or one in a header it does not recognise), pax_extensions
    // would read the entry's data, of any size, into memory.
    let kind = entry.header().entry_type();
    if kind.is_pax_global_extensions() || kind.is_pax_local_extensions() {
        return Ok(out);
    }
    let Ok(Some(pax)) = entry.pax_extensions() else { return Ok(out) };
    for ext in pax.flatten() {
        let Ok(key) = ext.key() else { continue };
        let Some(name) = key.strip_prefix("SCHILY.xattr.") else { continue };
        if name.starts_with("user.") && !name.starts_with("user.overlay.") {
            out.push((name.to_string(), ext.value_bytes().to_vec()));
        } else if name == "security.capability" {
            notes.add("file capabilities (security.capability) were dropped");
        } else {
            notes.add("extended attributes outside user.* were dropped");
        }
    }
    Ok(out)
}

/// What `unpackLayer` resolves with.
/// `sha256:<hex>` of `data`: the store's check of a manifest or config it
/// reads back, without loading node:crypto on the launch path of an image.
#[napi]
pub fn sha256_digest(data: napi::bindgen_prelude::Buffer) -> String {
    format!("sha256:{}", hex(&Sha256::digest(data.as_ref())))
}

#[napi(object)]
pub struct UnpackedLayer {
    pub entries: f64,
    pub bytes: f64,
    /// `sha256:<hex>` of the uncompressed tar: the layer's diff_id.
    pub diff_id: String,
    /// What was left out or changed (device nodes, setuid bits, xattrs), once each.
    pub notes: Vec<String>,
}

pub struct UnpackTask {
    archive: String,
    dest: String,
    limits: Limits,
}

impl napi::Task for UnpackTask {
    type Output = Outcome;
    type JsValue = UnpackedLayer;

    fn compute(&mut self) -> napi::Result<Outcome> {
        // SAFETY: geteuid cannot fail.
        let privileged = unsafe { libc::geteuid() } == 0;
        unpack_file(Path::new(&self.archive), Path::new(&self.dest), self.limits, privileged).map_err(|e| {
            // One JSON report, which TypeScript turns into a TsboxError (step `unpack`).
            let report = serde_json::json!({ "errno": e.errno, "path": e.path, "detail": e.detail, "hint": e.hint });
            napi::Error::from_reason(report.to_string())
        })
    }

    fn resolve(&mut self, _env: napi::Env, o: Outcome) -> napi::Result<UnpackedLayer> {
        Ok(UnpackedLayer {
            entries: o.entries as f64,
            bytes: o.bytes as f64,
            diff_id: o.diff_id,
            notes: o.notes,
        })
    }
}

pub struct FlattenTask {
    layers: Vec<String>,
    dest: String,
    caps: crate::flatten::Caps,
}

impl napi::Task for FlattenTask {
    type Output = u64;
    type JsValue = f64;

    fn compute(&mut self) -> napi::Result<u64> {
        // SAFETY: geteuid cannot fail.
        let privileged = unsafe { libc::geteuid() } == 0;
        crate::flatten::flatten(&self.layers, Path::new(&self.dest), privileged, self.caps).map_err(|e| {
            let report = serde_json::json!({ "errno": e.errno, "path": e.path, "detail": e.detail, "hint": e.hint });
            napi::Error::from_reason(report.to_string())
        })
    }

    fn resolve(&mut self, _env: napi::Env, n: u64) -> napi::Result<f64> {
        Ok(n as f64)
    }
}

/// Applies image layer directories (bottom first) into the existing empty
/// directory `dest`, as overlayfs would show them (whiteouts, opaque
/// directories), keeping each layer's hard links and holes, off the main
/// thread; resolves with the number of entries.
/// Rejects with a JSON report `{ errno, path, detail, hint }`.
#[napi(ts_return_type = "Promise<number>")]
pub fn flatten_layers(layers: Vec<String>, dest: String, more: Option<FlattenLimits>) -> napi::bindgen_prelude::AsyncTask<FlattenTask> {
    let mut caps = crate::flatten::Caps::default();
    if let Some(more) = more {
        if let Some(n) = more.max_bytes {
            caps.max_bytes = n as u64;
        }
        caps.min_free = more.min_free_bytes.map(|n| n as u64);
    }
    napi::bindgen_prelude::AsyncTask::new(FlattenTask { layers, dest, caps })
}

/// Limits `flattenLayers` otherwise takes from the defaults (tests set them
/// to reach them cheaply).
#[napi(object)]
pub struct FlattenLimits {
    /// Most bytes of file data the export writes (default 256 GiB).
    pub max_bytes: Option<f64>,
    /// Bytes the filesystem keeps free (default 1 GiB, or a twentieth of a smaller one).
    pub min_free_bytes: Option<f64>,
}

/// Unpacks the layer blob at `archive` (gzip, zstd or plain tar) into the
/// existing empty directory `dest`, off the main thread (libuv's pool).
/// Rejects with a JSON report `{ errno, path, detail, hint }`.
#[napi(ts_return_type = "Promise<UnpackedLayer>")]
pub fn unpack_layer(
    archive: String,
    dest: String,
    max_bytes: f64,
    max_entries: f64,
    more: Option<UnpackLimits>,
) -> napi::bindgen_prelude::AsyncTask<UnpackTask> {
    let mut limits = Limits::new(max_bytes as u64, max_entries as u64);
    if let Some(more) = more {
        if let Some(n) = more.max_dir_bytes {
            limits.max_dir_bytes = n as u64;
        }
        limits.min_free = more.min_free_bytes.map(|n| n as u64);
    }
    napi::bindgen_prelude::AsyncTask::new(UnpackTask { archive, dest, limits })
}

/// Limits `unpackLayer` otherwise takes from the defaults (tests set them to
/// reach them cheaply).
#[napi(object)]
pub struct UnpackLimits {
    /// Most bytes the layer's directories take in memory until their modes
    /// are set (default 64 MiB).
    pub max_dir_bytes: Option<f64>,
    /// Bytes the filesystem keeps free (default 1 GiB, or a twentieth of a smaller one).
    pub min_free_bytes: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};

    fn tmp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("tsbox-unpack-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// A tar header with the raw name (the tar crate's builder refuses `..`).
    fn header(name: &[u8], kind: tar::EntryType, size: u64, link: Option<&[u8]>) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        {
            let old = h.as_old_mut();
            old.name[..name.len()].copy_from_slice(name);
            if let Some(l) = link {
                old.linkname[..l.len()].copy_from_slice(l);
            }
        }
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(0o644);
        h.set_cksum();
        h
    }

    /// name, type, data, link target
    type Entry<'a> = (&'a [u8], tar::EntryType, &'a [u8], Option<&'a [u8]>);

    fn archive(entries: &[Entry<'_>]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, data, link) in entries {
            let h = header(name, *kind, data.len() as u64, *link);
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    const LIMITS: Limits = Limits {
        max_bytes: 1 << 30,
        max_entries: 1000,
        max_header_bytes: Limits::MAX_HEADER_BYTES,
        max_dir_bytes: Limits::MAX_DIR_BYTES,
        min_free: Some(0),
    };

    #[test]
    fn nothing_leaves_the_layer() {
        let base = tmp("escape");
        let dest = base.join("layer");
        let outside = base.join("outside");
        std::fs::create_dir_all(&dest).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        let out = outside.to_str().unwrap().as_bytes().to_vec();
        let tar = archive(&[
            (b"../escaped", tar::EntryType::Regular, b"dotdot", None),
            (b"/abs", tar::EntryType::Regular, b"absolute", None),
            (b"link", tar::EntryType::Symlink, b"", Some(&out)),
            (b"link/through", tar::EntryType::Regular, b"via symlink", None),
            (b"up", tar::EntryType::Symlink, b"", Some(b"../../..")),
            (b"up/tmp/x", tar::EntryType::Regular, b"up", None),
            (b"passwd", tar::EntryType::Link, b"", Some(b"/etc/passwd")),
        ]);
        let err = unpack(&tar[..], &dest, LIMITS, false).unwrap_err();
        // The hard link to /etc/passwd is resolved inside the layer, where there is none.
        assert_eq!(err.errno, libc::ENOENT, "{err}");
        assert_eq!(err.path, "passwd");
        assert_eq!(std::fs::read(dest.join("escaped")).unwrap(), b"dotdot");
        assert_eq!(std::fs::read(dest.join("abs")).unwrap(), b"absolute");
        // Through the symlink to `outside`: inside the layer, at its path there.
        assert_eq!(
            std::fs::read(dest.join(outside.strip_prefix("/").unwrap()).join("through")).unwrap(),
            b"via symlink"
        );
        assert_eq!(std::fs::read(dest.join("tmp/x")).unwrap(), b"up");
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0, "nothing was written outside");
        assert!(!base.join("escaped").exists());
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn whiteouts_and_hard_links() {
        let base = tmp("whiteout");
        let tar = archive(&[
            (b"dir/", tar::EntryType::Directory, b"", None),
            (b"dir/.wh..wh..opq", tar::EntryType::Regular, b"", None),
            (b".wh.gone", tar::EntryType::Regular, b"", None),
            (b"a", tar::EntryType::Regular, b"data", None),
            (b"b", tar::EntryType::Link, b"", Some(b"./a")),
        ]);
        let out = unpack(&tar[..], &base, LIMITS, unsafe { libc::geteuid() } == 0).unwrap();
        assert_eq!(out.entries, 5);
        let wh = std::fs::symlink_metadata(base.join("gone")).unwrap();
        assert!(wh.file_type().is_char_device());
        assert_eq!(wh.rdev(), 0);
        assert_eq!(
            std::fs::metadata(base.join("a")).unwrap().ino(),
            std::fs::metadata(base.join("b")).unwrap().ino()
        );
        let mut buf = [0u8; 4];
        let p = CString::new(base.join("dir").as_os_str().as_bytes()).unwrap();
        let k = CString::new("user.overlay.opaque").unwrap();
        // SAFETY: getxattr into a buffer we own.
        let n = unsafe { libc::getxattr(p.as_ptr(), k.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        assert_eq!(&buf[..n.max(0) as usize], b"y");
        assert!(out.diff_id.starts_with("sha256:") && out.diff_id.len() == 71);
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn a_bomb_is_refused_before_it_is_written() {
        let base = tmp("bomb");
        let mut h = header(b"huge", tar::EntryType::Regular, 1 << 40, None);
        h.set_cksum();
        let mut tar = h.as_bytes().to_vec();
        tar.extend_from_slice(&[0u8; 1024]);
        let err = unpack(&tar[..], &base, LIMITS, false).unwrap_err();
        assert_eq!(err.errno, libc::EFBIG);
        assert!(!base.join("huge").exists());
        let many: Vec<_> = (0..20).map(|i| format!("f{i}")).collect();
        let entries: Vec<Entry<'_>> = many
            .iter()
            .map(|n| (n.as_bytes(), tar::EntryType::Regular, &b""[..], None))
            .collect();
        let err = unpack(
            &archive(&entries)[..],
            &base,
            Limits {
                max_bytes: 1 << 20,
                max_entries: 10,
                ..LIMITS
            },
            false,
        )
        .unwrap_err();
        assert!(err.detail.contains("more than 10 entries"), "{err}");
        std::fs::remove_dir_all(&base).unwrap();
    }

    /// A raw record of type `kind` (GNU long name `L`, PAX `x` or `g`) whose
    /// data is `data`, as the tar crate's builder would not write it.
    fn record(kind: tar::EntryType, data: &[u8]) -> Vec<u8> {
        let mut out = header(b"././@LongLink", kind, data.len() as u64, None).as_bytes().to_vec();
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
        out
    }

    /// A PAX record line: `<len> key=value\n`, its length counting itself.
    fn pax_line(key: &str, value: &[u8]) -> Vec<u8> {
        let body = [b" ", key.as_bytes(), b"=", value, b"\n"].concat();
        let mut len = body.len() + 1;
        while format!("{len}").len() + body.len() != len {
            len += 1;
        }
        [format!("{len}").as_bytes(), &body[..]].concat()
    }

    #[test]
    fn an_oversized_long_name_or_pax_header_is_refused_before_it_is_read() {
        // Each header claims 2 MiB (a real bomb claims 3 GiB of zeros, which
        // gzip shrinks to 3 MB); the tar reader would hold all of it in memory.
        let big = vec![0u8; 2 << 20];
        let file = archive(&[(b"f", tar::EntryType::Regular, b"x", None)]);
        for kind in [
            tar::EntryType::GNULongName,
            tar::EntryType::GNULongLink,
            tar::EntryType::XHeader,
            tar::EntryType::XGlobalHeader,
        ] {
            let base = tmp("longname");
            let data = if matches!(kind, tar::EntryType::XHeader | tar::EntryType::XGlobalHeader) {
                pax_line("comment", &vec![b'a'; 2 << 20])
            } else {
                big.clone()
            };
            let tar = [record(kind, &data), file.clone()].concat();
            let err = unpack(&tar[..], &base, LIMITS, false).unwrap_err();
            assert_eq!(err.errno, libc::EFBIG, "{kind:?}: {err}");
            assert!(err.detail.contains("metadata"), "{kind:?}: {err}");
            assert!(!base.join("f").exists());
            std::fs::remove_dir_all(&base).unwrap();
        }
        // A long name of an ordinary length still works.
        let base = tmp("longname-ok");
        let long = format!("{}/{}", "d".repeat(200), "n".repeat(200));
        let name = [long.as_bytes(), b"\0"].concat();
        let tar = [record(tar::EntryType::GNULongName, &name), file].concat();
        unpack(&tar[..], &base, LIMITS, false).unwrap();
        assert_eq!(std::fs::read(base.join(&long)).unwrap(), b"x");
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn the_uncompressed_stream_is_bounded() {
        // Twenty entries, each with 30 KB of PAX comments: small files, but a
        // stream far larger than what 10 entries of 1000 bytes can need.
        let base = tmp("stream");
        let pax = record(tar::EntryType::XHeader, &pax_line("comment", &vec![b'c'; 30_000]));
        let mut tar = Vec::new();
        for i in 0..20 {
            tar.extend_from_slice(&pax);
            tar.extend_from_slice(&archive(&[(format!("f{i}").as_bytes(), tar::EntryType::Regular, b"", None)])[..512]);
        }
        tar.extend_from_slice(&[0u8; 1024]);
        let limits = Limits {
            max_bytes: 1000,
            max_entries: 100,
            max_header_bytes: 64 << 10,
            ..LIMITS
        };
        let err = unpack(&tar[..], &base, limits, false).unwrap_err();
        assert_eq!(err.errno, libc::EFBIG, "{err}");
        assert!(err.detail.contains("uncompressed"), "{err}");
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn a_skipped_entry_still_counts_against_the_size_limit() {
        // A PAX path with a NUL is skipped; its 1 MiB still counts.
        let base = tmp("nulpath");
        let pax = record(tar::EntryType::XHeader, &pax_line("path", b"a\0b"));
        let mut tar = pax;
        tar.extend_from_slice(header(b"x", tar::EntryType::Regular, 1 << 20, None).as_bytes());
        tar.extend_from_slice(&vec![0u8; (1 << 20) + 1024]);
        let limits = Limits { max_bytes: 1000, ..LIMITS };
        let err = unpack(&tar[..], &base, limits, false).unwrap_err();
        assert_eq!(err.errno, libc::EFBIG, "{err}");
        assert!(err.detail.contains("more than 1000 bytes"), "{err}");
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn a_directory_replaced_by_a_symlink_keeps_the_host_unchanged() {
        let base = tmp("replaced");
        let dest = base.join("layer");
        let outside = base.join("outside");
        std::fs::create_dir_all(&dest).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::set_permissions(&outside, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let out = outside.to_str().unwrap().as_bytes().to_vec();
        let mut dir = header(b"a/", tar::EntryType::Directory, 0, None);
        dir.set_mode(0o700);
        dir.set_cksum();
        let mut b = tar::Builder::new(Vec::new());
        b.append(&dir, &b""[..]).unwrap();
        b.append(&header(b"a", tar::EntryType::Symlink, 0, Some(&out)), &b""[..]).unwrap();
        let tar = b.into_inner().unwrap();
        unpack(&tar[..], &dest, LIMITS, false).unwrap();
        assert!(std::fs::symlink_metadata(dest.join("a")).unwrap().file_type().is_symlink());
        assert_eq!(
            std::fs::metadata(&outside).unwrap().mode() & 0o7777,
            0o755,
            "the directory the symlink names kept its mode"
        );
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn gzip_zstd_and_plain_layers() {
        let base = tmp("compressed");
        let tar = archive(&[(b"f", tar::EntryType::Regular, b"content", None)]);
        let gz = {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&tar).unwrap();
            e.finish().unwrap()
        };
        let zst = zstd::stream::encode_all(&tar[..], 3).unwrap();
        let mut diff_ids = Vec::new();
        for (i, bytes) in [tar.clone(), gz, zst].into_iter().enumerate() {
            let file = base.join(format!("layer{i}"));
            let dest = base.join(format!("dir{i}"));
            std::fs::write(&file, &bytes).unwrap();
            std::fs::create_dir(&dest).unwrap();
            let out = unpack_file(&file, &dest, LIMITS, false).unwrap();
            assert_eq!(std::fs::read(dest.join("f")).unwrap(), b"content");
            diff_ids.push(out.diff_id);
        }
        // The diff_id is the uncompressed stream's, whatever the compression.
        assert_eq!(diff_ids[0], format!("sha256:{}", hex(&Sha256::digest(&tar))));
        assert!(diff_ids.iter().all(|d| *d == diff_ids[0]));
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn zeros_become_holes_and_the_length_is_kept() {
        let base = tmp("sparse");
        let mut data = vec![0u8; 8 << 20];
        data[100] = 1;
        let tar = archive(&[(b"big", tar::EntryType::Regular, &data, None)]);
        unpack(&tar[..], &base, LIMITS, false).unwrap();
        let md = std::fs::metadata(base.join("big")).unwrap();
        assert_eq!(md.len(), 8 << 20);
        assert_eq!(std::fs::read(base.join("big")).unwrap(), data);
        // Far fewer blocks than 8 MiB: the zeros are holes.
        assert!(md.blocks() * 512 < 1 << 20, "{} blocks", md.blocks());
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn names_in_errors_cannot_drive_the_terminal() {
        let base = tmp("names");
        // A hard link, named with terminal escapes, to a target that is not in the layer.
        let tar = archive(&[(b"evil\x1b[2J\nline\xff", tar::EntryType::Link, b"", Some(b"gone\x07\xe2\x80\xae"))]);
        let err = unpack(&tar[..], &base, LIMITS, false).unwrap_err();
        assert_eq!(err.path, "evil\\x1b[2J\\x0aline\\xff");
        assert!(err.detail.contains("gone\\x07\\u{202e}"), "{}", err.detail);
        assert!(!format!("{err}").chars().any(|c| c.is_control()));
        assert_eq!(printable(&[b'a'; 600]).chars().count(), 513);
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn clean_never_climbs() {
        assert_eq!(clean(b"../../etc/passwd").unwrap(), PathBuf::from("etc/passwd"));
        assert_eq!(clean(b"/a/./b/../c").unwrap(), PathBuf::from("a/c"));
        assert_eq!(clean(b"./").unwrap(), PathBuf::from(""));
        assert!(clean(b"a\0b").is_none());
    }
}
