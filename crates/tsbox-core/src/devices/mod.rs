//! Device rules (an OCI bundle's `linux.resources.devices`) as the v1 device
//! cgroup takes them, and their eBPF program for cgroup v2, which has no
//! device controller: a `BPF_PROG_TYPE_CGROUP_DEVICE` program attached to the
//! container's cgroup decides every open and mknod of a device node instead.
//!
//! The rules arrive as the writes tsbox makes to a v1 device cgroup
//! (`devices.deny a`, `devices.allow c 1:3 rwm`, ...), in order. [`Policy`]
//! replays them the way the kernel's v1 controller does
//! (security/device_cgroup.c), so a rule list means the same on v1 and v2:
//!
//! - `a` resets: `deny a` makes the default deny and drops every exception,
//!   `allow a` makes it allow and drops them too;
//! - a rule against the default adds an exception, merged with one for the
//!   same type and numbers; a rule with the default takes its access away
//!   from the exception with exactly the same type and numbers only;
//! - default deny: an access is allowed when one exception covers all of it;
//!   default allow: it is denied when any exception shares part of it.
//!
//! The v1 kernel ignores a rule that would open a hole in a wildcard exception
//! (`deny c 1:3 w` after `allow c *:* rw`, default deny): nothing is removed,
//! and the device stays allowed. That is a rule not carried out, so it is an
//! error here (runc refuses it too).
//!
//! [`program`] turns a policy into instructions ([`Insn`]): one block per
//! exception, each ending in the opposite of the default, and the default at
//! the end. Exceptions all give the same verdict, so their order does not
//! matter, and the program decides as the v1 controller would.

mod program;

#[cfg(test)]
mod interp;
#[cfg(test)]
mod tests;

pub use program::{program, Insn};

/// `DEVCG_DEV_*`, as the kernel passes them to a device program (`BPF_DEVCG_DEV_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Block = 1,
    Char = 2,
}

/// `BPF_DEVCG_ACC_*`: the access bits of a rule and of a request.
pub const ACC_MKNOD: u8 = 1;
pub const ACC_READ: u8 = 2;
pub const ACC_WRITE: u8 = 4;
pub const ACC_ALL: u8 = ACC_MKNOD | ACC_READ | ACC_WRITE;

/// One device rule: which devices (`kind` None: `a`, every device) and what
/// access, to allow or to deny. A number of None is `*`, any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub allow: bool,
    pub kind: Option<Kind>,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: u8,
}

impl Rule {
    /// A write to a v1 device cgroup: `file` is `devices.allow` or
    /// `devices.deny`, `value` is `a` (also `a *:* rwm`) or `c 1:3 rwm`,
    /// `b 8:* r`. Anything else is an error naming the value.
    pub fn parse(file: &str, value: &str) -> Result<Rule, String> {
        let allow = match file {
            "devices.allow" => true,
            "devices.deny" => false,
            _ => return Err(format!("{file:?} is not devices.allow or devices.deny")),
        };
        let bad = || format!("{value:?} is not a device rule (a, or c or b, major:minor and access, such as \"c 1:3 rwm\")");
        let fields: Vec<&str> = value.split_whitespace().collect();
        let kind = match fields.first().copied() {
            Some("a") => None,
            Some("c") => Some(Kind::Char),
            Some("b") => Some(Kind::Block),
            _ => return Err(bad()),
        };
        if kind.is_none() {
            // The kernel takes `a` alone for every device and every access.
            if fields.len() == 1 || fields[1..] == ["*:*", "rwm"] {
                return Ok(Rule {
                    allow,
                    kind,
                    major: None,
                    minor: None,
                    access: ACC_ALL,
                });
            }
            return Err(bad());
        }
        let [_, numbers, access] = fields[..] else { return Err(bad()) };
        let (major, minor) = numbers.split_once(':').ok_or_else(bad)?;
        let number = |s: &str| -> Result<Option<u32>, String> {
            match s {
                "*" => Ok(None),
                _ if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s.parse().map(Some).map_err(|_| bad()),
                _ => Err(bad()),
            }
        };
        let mut bits = 0u8;
        for c in access.chars() {
            let bit = match c {
                'r' => ACC_READ,
                'w' => ACC_WRITE,
                'm' => ACC_MKNOD,
                _ => return Err(bad()),
            };
            if bits & bit != 0 {
                return Err(bad());
            }
            bits |= bit;
        }
        if bits == 0 {
            return Err(bad());
        }
        Ok(Rule {
            allow,
            kind,
            major: number(major)?,
            minor: number(minor)?,
            access: bits,
        })
    }

    fn key(&self) -> Option<Key> {
        Some(Key {
            kind: self.kind?,
            major: self.major,
            minor: self.minor,
        })
    }
}

/// The devices an exception names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    pub kind: Kind,
    pub major: Option<u32>,
    pub minor: Option<u32>,
}

impl Key {
    fn matches(&self, kind: Kind, major: u32, minor: u32) -> bool {
        self.kind == kind && self.major.is_none_or(|m| m == major) && self.minor.is_none_or(|m| m == minor)
    }
}

/// The state of a v1 device cgroup: its default and its exceptions, in the
/// order they were first added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub default_allow: bool,
    pub exceptions: Vec<(Key, u8)>,
}

impl Default for Policy {
    /// A new device cgroup under an unrestricted parent: every device allowed.
    fn default() -> Policy {
        Policy {
            default_allow: true,
            exceptions: Vec::new(),
        }
    }
}

impl Policy {
    /// The policy the writes `rules` leave, from a new cgroup's (allow all).
    pub fn from_rules(rules: &[Rule]) -> Result<Policy, String> {
        let mut p = Policy::default();
        for r in rules {
            p.apply(r)?;
        }
        Ok(p)
    }

    /// One write, as the v1 controller takes it.
    pub fn apply(&mut self, rule: &Rule) -> Result<(), String> {
        let Some(key) = rule.key() else {
            self.default_allow = rule.allow;
            self.exceptions.clear();
            return Ok(());
        };
        if rule.allow != self.default_allow {
            match self.exceptions.iter_mut().find(|(k, _)| *k == key) {
                Some((_, access)) => *access |= rule.access,
                None => self.exceptions.push((key, rule.access)),
            }
            return Ok(());
        }
        // With the default: only the exception for exactly these devices
        // loses the access. One for more of them (a wildcard) would keep it,
        // and the rule would do nothing.
        for wider in [
            Key { major: None, ..key },
            Key { minor: None, ..key },
            Key {
                major: None,
                minor: None,
                ..key
            },
        ] {
            if wider == key {
                continue;
            }
            if let Some((_, access)) = self.exceptions.iter().find(|(k, a)| *k == wider && a & rule.access != 0) {
                return Err(format!(
                    "{} cannot take effect: an earlier rule {} {} for more devices, and a device cgroup takes a rule's access away only from the rule for exactly the same devices (give the devices to {} one by one instead of with *)",
                    describe(rule.allow, &key, rule.access),
                    if self.default_allow { "denies" } else { "allows" },
                    describe_key(&wider, *access),
                    if self.default_allow { "deny" } else { "allow" },
                ));
            }
        }
        if let Some(i) = self.exceptions.iter().position(|(k, _)| *k == key) {
            self.exceptions[i].1 &= !rule.access;
            if self.exceptions[i].1 == 0 {
                self.exceptions.remove(i);
            }
        }
        Ok(())
    }

    /// Whether `access` (ACC_* bits) to the device is allowed: the v1
    /// controller's decision, for the tests to check programs against.
    pub fn allows(&self, kind: Kind, major: u32, minor: u32, access: u8) -> bool {
        let mut matching = self.exceptions.iter().filter(|(k, _)| k.matches(kind, major, minor));
        if self.default_allow {
            !matching.any(|(_, a)| a & access != 0)
        } else {
            matching.any(|(_, a)| access & !a == 0)
        }
    }
}

fn describe_key(key: &Key, access: u8) -> String {
    let n = |v: Option<u32>| v.map_or("*".to_string(), |v| v.to_string());
    let kind = if key.kind == Kind::Char { 'c' } else { 'b' };
    let acc: String = [(ACC_READ, 'r'), (ACC_WRITE, 'w'), (ACC_MKNOD, 'm')]
        .iter()
        .filter(|(b, _)| access & b != 0)
        .map(|(_, c)| c)
        .collect();
    format!("{kind} {}:{} {acc}", n(key.major), n(key.minor))
}

fn describe(allow: bool, key: &Key, access: u8) -> String {
    format!("the rule to {} {}", if allow { "allow" } else { "deny" }, describe_key(key, access))
}
