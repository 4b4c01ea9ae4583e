//! The container user, resolved inside the container after pivot_root (so a
//! name means what the rootfs's /etc/passwd says, and a symlink there cannot
//! point at a host file), the way Docker and runc resolve `--user`.

use tsbox_core::{Report, Step, User};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups: the groups listing the user in /etc/group, then
    /// the extra ones asked for.
    pub groups: Vec<u32>,
    pub home: String,
}

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 7 {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f[5].to_string(),
            })
        })
        .collect()
}

fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 4 {
                return None;
            }
            let members = f[3].split(',').filter(|m| !m.is_empty()).map(str::to_string).collect();
            Some(GroupEntry {
                name: f[0].to_string(),
                gid: f[2].parse().ok()?,
                members,
            })
        })
        .collect()
}

/// `(uid_t)-1` and `(gid_t)-1` mean "leave unchanged" to setresuid and
/// setresgid: a process told to switch to them would keep the ids it has,
/// which on the exec path are the helper's (host root). The container's
/// /etc/passwd and /etc/group are hostile input, so no id from anywhere may be
/// this one.
pub const UNCHANGED: u32 = u32::MAX;

fn refuse_unchanged(kind: &str, id: u32, named: &str, source: &str) -> Result<u32, Report> {
    if id != UNCHANGED {
        return Ok(id);
    }
    Err(Report::new(Step::User, libc::EINVAL)
        .path(named.to_string())
        .detail(format!(
            "{kind} {named} resolves to {id} in {source}, which setres{kind} reads as \"leave unchanged\""
        ))
        .hint(format!(
            "{UNCHANGED} is not a valid {kind}: use another id (at most {})",
            UNCHANGED - 1
        )))
}

fn bad(what: &str, value: &str, file: &str) -> Report {
    Report::new(Step::User, libc::EINVAL)
        .path(value.to_string())
        .detail(format!("no {what} named {value} in the container's {file}"))
        .hint(format!("use a numeric id, or one that the rootfs's {file} defines"))
}

/// Resolves against the given /etc/passwd and /etc/group contents (empty when
/// the rootfs has none; numeric ids then still work).
pub fn resolve(user: &User, passwd: &str, group: &str) -> Result<Resolved, Report> {
    let pw = parse_passwd(passwd);
    let gr = parse_group(group);
    let entry = match user.user.parse::<u32>() {
        Ok(uid) => pw.iter().find(|e| e.uid == uid),
        Err(_) => Some(
            pw.iter()
                .find(|e| e.name == user.user)
                .ok_or_else(|| bad("user", &user.user, "/etc/passwd"))?,
        ),
    };
    let uid = entry.map(|e| e.uid).unwrap_or_else(|| user.user.parse().unwrap_or(0));
    let uid = refuse_unchanged(
        "uid",
        uid,
        &user.user,
        if entry.is_some() { "/etc/passwd" } else { "the user given" },
    )?;
    let group_id = |g: &str| -> Result<u32, Report> {
        match g.parse::<u32>() {
            Ok(gid) => refuse_unchanged("gid", gid, g, "the group given"),
            Err(_) => gr
                .iter()
                .find(|e| e.name == g)
                .map(|e| e.gid)
                .ok_or_else(|| bad("group", g, "/etc/group"))
                .and_then(|gid| refuse_unchanged("gid", gid, g, "/etc/group")),
        }
    };
    let gid = match &user.group {
        Some(g) => group_id(g)?,
        None => refuse_unchanged("gid", entry.map(|e| e.gid).unwrap_or(0), &user.user, "/etc/passwd")?,
    };
    let mut groups = Vec::new();
    // Membership by name, as initgroups does, unless a group was given explicitly (Docker's rule).
    if let (Some(e), None) = (entry, &user.group) {
        for g in gr.iter().filter(|g| g.members.contains(&e.name)) {
            refuse_unchanged("gid", g.gid, &g.name, "/etc/group")?;
            if g.gid != gid && !groups.contains(&g.gid) {
                groups.push(g.gid);
            }
        }
    }
    for g in &user.additional_groups {
        let id = group_id(g)?;
        if !groups.contains(&id) {
            groups.push(id);
        }
    }
    let home = entry
        .map(|e| e.home.clone())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| if uid == 0 { "/root".into() } else { "/".into() });
    Ok(Resolved { uid, gid, groups, home })
}

/// Reads the container's files (after pivot_root) and resolves.
pub fn resolve_in_container(user: &User) -> Result<Resolved, Report> {
    let read = |p: &str| read_small_regular(p).unwrap_or_default();
    resolve(user, &read("/etc/passwd"), &read("/etc/group"))
}

/// The contents of `path` if it is a regular file of at most 4 MiB. The rootfs
/// is not trusted: a FIFO there must not hang the launch, nor a huge file
/// exhaust memory. Opened non-blocking, checked with fstat before reading.
fn read_small_regular(path: &str) -> Option<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .ok()?;
    let meta = f.metadata().ok()?;
    if !meta.is_file() || meta.len() > 4 << 20 {
        return None;
    }
    let mut s = String::new();
    f.by_ref().take(4 << 20).read_to_string(&mut s).ok()?;
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\ntester:x:1000:1000:tester:/home/tester:/bin/sh\n# comment\nbroken\n";
    const GROUP: &str = "root:x:0:\ntester:x:1000:\nstaff:x:50:tester,other\naudio:x:29:tester\n";

    fn u(user: &str, group: Option<&str>, extra: &[&str]) -> User {
        User {
            user: user.into(),
            group: group.map(Into::into),
            additional_groups: extra.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn a_name_takes_uid_gid_home_and_memberships_from_the_rootfs() {
        let r = resolve(&u("tester", None, &[]), PASSWD, GROUP).unwrap();
        assert_eq!(
            r,
            Resolved {
                uid: 1000,
                gid: 1000,
                groups: vec![50, 29],
                home: "/home/tester".into()
            }
        );
    }

    #[test]
    fn a_number_works_without_an_entry() {
        let r = resolve(&u("4242", None, &[]), PASSWD, GROUP).unwrap();
        assert_eq!(
            r,
            Resolved {
                uid: 4242,
                gid: 0,
                groups: vec![],
                home: "/".into()
            }
        );
        let root = resolve(&u("0", None, &[]), "", "").unwrap();
        assert_eq!(root.home, "/root");
    }

    #[test]
    fn an_explicit_group_replaces_the_memberships() {
        let r = resolve(&u("tester", Some("staff"), &["audio", "7"]), PASSWD, GROUP).unwrap();
        assert_eq!((r.gid, r.groups), (50, vec![29, 7]));
    }

    #[test]
    fn the_id_that_means_unchanged_is_refused_from_every_source() {
        const HOSTILE_PASSWD: &str = "app:x:4294967295:1000::/:/bin/sh\nagid:x:1000:4294967295::/:/bin/sh\nmember:x:1001:1001::/:/bin/sh\n";
        const HOSTILE_GROUP: &str = "wheel:x:4294967295:member\nok:x:50:\n";
        for (who, group, extra) in [
            ("4294967295", None, &[][..]),
            ("app", None, &[]),
            ("agid", None, &[]),
            ("member", None, &[]),
            ("0", Some("4294967295"), &[]),
            ("0", Some("wheel"), &[]),
            ("0", None, &["4294967295"]),
            ("0", None, &["wheel"]),
        ] {
            let e = resolve(&u(who, group, extra), HOSTILE_PASSWD, HOSTILE_GROUP).unwrap_err();
            assert_eq!((e.step, e.errno), (Step::User, libc::EINVAL), "{who} {group:?} {extra:?}");
            assert!(e.detail.contains("4294967295"), "{}", e.detail);
        }
        // The id below it is an ordinary one.
        assert_eq!(resolve(&u("4294967294", None, &[]), "", "").unwrap().uid, 4294967294);
    }

    #[test]
    fn unknown_names_are_errors_naming_them() {
        let e = resolve(&u("nobody-here", None, &[]), PASSWD, GROUP).unwrap_err();
        assert_eq!(e.path.as_deref(), Some("nobody-here"));
        assert!(e.detail.contains("/etc/passwd"));
        let e = resolve(&u("tester", Some("wheel"), &[]), PASSWD, GROUP).unwrap_err();
        assert!(e.detail.contains("group named wheel"));
    }
}
