//! Pure parsers for the /proc files the probe reads. No I/O here, so every
//! parser is unit-tested against fixture strings.

use serde::Serialize;
use std::collections::BTreeMap;

/// One line of /proc/self/mountinfo (see proc(5)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Mount {
    pub id: u64,
    pub parent_id: u64,
    /// The root of the mount within its filesystem (differs from "/" for bind mounts).
    pub root: String,
    pub mount_point: String,
    pub fs_type: String,
    pub source: String,
    /// Per-mount options, e.g. "rw,nosuid,nodev,relatime".
    pub options: String,
    /// Per-superblock options, e.g. "rw,size=65536k,mode=755".
    pub super_options: String,
}

/// Undo the octal escaping the kernel applies to mountinfo fields
/// (`\040` space, `\011` tab, `\012` newline, `\134` backslash).
pub fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            let v = (b[i + 1] - b'0') as u32 * 64 + (b[i + 2] - b'0') as u32 * 8 + (b[i + 3] - b'0') as u32;
            if v <= 0xff {
                out.push(v as u8);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parse one mountinfo line:
/// `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`
pub fn parse_mountinfo_line(line: &str) -> Result<Mount, String> {
    let fields: Vec<&str> = line.split(' ').filter(|f| !f.is_empty()).collect();
    let sep = fields
        .iter()
        .position(|f| *f == "-")
        .ok_or_else(|| format!("no ' - ' separator in mountinfo line {line:?}"))?;
    if sep < 6 || fields.len() < sep + 3 {
        return Err(format!("too few fields in mountinfo line {line:?}"));
    }
    let num = |s: &str, what: &str| -> Result<u64, String> {
        s.parse::<u64>().map_err(|_| format!("bad {what} {s:?} in mountinfo line {line:?}"))
    };
    Ok(Mount {
        id: num(fields[0], "mount id")?,
        parent_id: num(fields[1], "parent id")?,
        root: unescape_octal(fields[3]),
        mount_point: unescape_octal(fields[4]),
        options: fields[5].to_string(),
        fs_type: unescape_octal(fields[sep + 1]),
        source: unescape_octal(fields[sep + 2]),
        // Super options can be absent on very old kernels; be lenient.
        super_options: fields.get(sep + 3).map(|s| unescape_octal(s)).unwrap_or_default(),
    })
}

pub fn parse_mountinfo(text: &str) -> Result<Vec<Mount>, String> {
    text.lines().filter(|l| !l.trim().is_empty()).map(parse_mountinfo_line).collect()
}

/// Parse /proc/self/uid_map or gid_map: lines of `inside outside count`.
pub fn parse_id_map(text: &str) -> Result<Vec<[u64; 3]>, String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        if parts.is_empty() {
            continue;
        }
        if parts.len() != 3 {
            return Err(format!("bad id map line {line:?}"));
        }
        let mut v = [0u64; 3];
        for (slot, p) in v.iter_mut().zip(&parts) {
            *slot = p.parse().map_err(|_| format!("bad number {p:?} in id map line {line:?}"))?;
        }
        out.push(v);
    }
    Ok(out)
}

/// Parse /proc/self/status into `Key -> value` (value trimmed).
pub fn parse_status(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// Parse the target of a /proc/self/ns/X link, e.g. `user:[4026531837]`.
pub fn parse_ns_link(target: &str) -> Result<u64, String> {
    let open = target.find(":[").ok_or_else(|| format!("bad ns link {target:?}"))?;
    let inner = target[open + 2..]
        .strip_suffix(']')
        .ok_or_else(|| format!("bad ns link {target:?}"))?;
    inner.parse().map_err(|_| format!("bad ns inode in {target:?}"))
}

/// Interface names from /proc/net/dev (two header lines, then `name: counters`).
pub fn parse_net_dev(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(name, _)| name.trim().to_string())
        // The header lines contain '|' and no ':' in the name column.
        .filter(|n| !n.is_empty() && !n.contains('|'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_basic() {
        let m = parse_mountinfo_line("36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue").unwrap();
        assert_eq!(
            m,
            Mount {
                id: 36,
                parent_id: 35,
                root: "/mnt1".into(),
                mount_point: "/mnt2".into(),
                fs_type: "ext3".into(),
                source: "/dev/root".into(),
                options: "rw,noatime".into(),
                super_options: "rw,errors=continue".into(),
            }
        );
    }

    #[test]
    fn mountinfo_no_optional_fields() {
        let m = parse_mountinfo_line("22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw").unwrap();
        assert_eq!(m.mount_point, "/proc");
        assert_eq!(m.fs_type, "proc");
        assert_eq!(m.source, "proc");
        assert_eq!(m.options, "rw,nosuid,nodev,noexec,relatime");
        assert_eq!(m.super_options, "rw");
    }

    #[test]
    fn mountinfo_several_optional_fields() {
        let m =
            parse_mountinfo_line("40 22 0:5 / /dev rw shared:2 master:7 propagate_from:3 unbindable - devtmpfs udev rw,size=4k,mode=755")
                .unwrap();
        assert_eq!(m.fs_type, "devtmpfs");
        assert_eq!(m.source, "udev");
        assert_eq!(m.super_options, "rw,size=4k,mode=755");
    }

    #[test]
    fn mountinfo_escaped_spaces() {
        let m =
            parse_mountinfo_line(r"100 36 8:1 /with\040space /mnt/my\040dir\011tab\134back rw,relatime - ext4 /dev/sd\040a1 rw").unwrap();
        assert_eq!(m.root, "/with space");
        assert_eq!(m.mount_point, "/mnt/my dir\ttab\\back");
        assert_eq!(m.source, "/dev/sd a1");
    }

    #[test]
    fn mountinfo_errors() {
        assert!(parse_mountinfo_line("").is_err());
        assert!(parse_mountinfo_line("36 35 98:0 /mnt1 /mnt2 rw,noatime").is_err());
        assert!(parse_mountinfo_line("x 35 98:0 / / rw - ext4 /dev/x rw").is_err());
        assert!(parse_mountinfo_line("1 2 - ext4 /dev/x rw").is_err());
    }

    #[test]
    fn mountinfo_multi_line() {
        let text = "22 1 0:21 / /proc rw - proc proc rw\n23 1 0:22 / /tmp rw - tmpfs tmpfs rw,mode=1777\n";
        let v = parse_mountinfo(text).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[1].super_options, "rw,mode=1777");
    }

    #[test]
    fn unescape_edge_cases() {
        assert_eq!(unescape_octal(r"a\040"), "a ");
        assert_eq!(unescape_octal(r"a\04"), r"a\04");
        assert_eq!(unescape_octal(r"a\"), r"a\");
        assert_eq!(unescape_octal(r"\x40"), r"\x40");
        assert_eq!(unescape_octal("plain"), "plain");
    }

    #[test]
    fn id_map() {
        let text = "         0     100000      65536\n     65536          0          1\n";
        assert_eq!(parse_id_map(text).unwrap(), vec![[0, 100000, 65536], [65536, 0, 1]]);
        // Initial user namespace.
        assert_eq!(
            parse_id_map("         0          0 4294967295\n").unwrap(),
            vec![[0, 0, 4294967295]]
        );
        assert_eq!(parse_id_map("").unwrap(), Vec::<[u64; 3]>::new());
        assert!(parse_id_map("0 1\n").is_err());
        assert!(parse_id_map("0 x 1\n").is_err());
    }

    #[test]
    fn status_lines() {
        let text = "Name:\ttsbox-probe\nUmask:\t0022\nState:\tR (running)\n\
                    Uid:\t0\t0\t0\t0\n\
                    CapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\nCapEff:\t000001ffffffffff\n\
                    CapBnd:\t000001ffffffffff\nCapAmb:\t0000000000000000\nNoNewPrivs:\t1\n\
                    Seccomp:\t2\nSeccomp_filters:\t1\n";
        let s = parse_status(text);
        assert_eq!(s["Name"], "tsbox-probe");
        assert_eq!(s["State"], "R (running)");
        assert_eq!(s["CapPrm"], "000001ffffffffff");
        assert_eq!(s["CapInh"], "0000000000000000");
        assert_eq!(s["NoNewPrivs"], "1");
        assert_eq!(s["Seccomp"], "2");
        assert_eq!(s["Seccomp_filters"], "1");
        assert_eq!(s["Uid"], "0\t0\t0\t0");
        assert!(!s.contains_key("CapFoo"));
    }

    #[test]
    fn ns_link() {
        assert_eq!(parse_ns_link("user:[4026531837]").unwrap(), 4026531837);
        assert_eq!(parse_ns_link("cgroup:[4026531835]").unwrap(), 4026531835);
        assert!(parse_ns_link("user:4026531837").is_err());
        assert!(parse_ns_link("user:[abc]").is_err());
    }

    #[test]
    fn net_dev() {
        let text = "Inter-|   Receive                                                |  Transmit\n \
                    face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
                    lo:   12345      10    0    0    0     0          0         0    12345      10    0    0    0     0       0          0\n  \
                    eth0:100 1 0 0 0 0 0 0 200 2 0 0 0 0 0 0\n";
        assert_eq!(parse_net_dev(text), vec!["lo".to_string(), "eth0".to_string()]);
    }
}
