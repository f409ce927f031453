//! The device's posture, read cheaply from files on Linux: no subprocess, no
//! privilege.
//!
//! - `os_version`: `PRETTY_NAME` (else `VERSION_ID`) of `/etc/os-release`
//!   (or `/usr/lib/os-release`).
//! - `hostname` and `kernel`: `/proc/sys/kernel/{hostname,osrelease}`.
//! - `disk_encryption`: the device mounted on `/` (from `/proc/mounts`) is a
//!   device-mapper device whose table, followed down through its `slaves/`
//!   (LVM on LUKS), includes a dm-crypt mapping (`dm/uuid` starting with
//!   `CRYPT-`): `Some(true)`. A plain disk partition or a dm stack without
//!   dm-crypt: `Some(false)`. Anything else (overlay, network or container
//!   roots, ZFS...): `None`, unknown.
//! - `firewall`: netfilter tables are loaded (`/proc/net/ip{,6}_tables_names`
//!   non-empty, or the `nf_tables` module in use): `Some(true)`. Without
//!   privileges the agent cannot list nftables rules, so it never claims
//!   `Some(false)`: unknown is `None`.
//! - `screen_lock`: unknown (`None`); it depends on the desktop session.
//!
//! The parsing functions are pure, for tests; [`collect`] reads the files.

use std::fs;
use std::path::{Path, PathBuf};

use ward_api::Posture;

/// The agent's version, as reported.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Collects the posture of this machine.
pub fn collect() -> Posture {
    let read = |p: &str| fs::read_to_string(p).ok();
    let os_release = read("/etc/os-release").or_else(|| read("/usr/lib/os-release"));
    let mounts = read("/proc/mounts").unwrap_or_default();
    Posture {
        os: std::env::consts::OS.to_owned(),
        os_version: os_release
            .as_deref()
            .and_then(os_version)
            .unwrap_or_else(|| "unknown".to_owned()),
        hostname: hostname(),
        agent_version: AGENT_VERSION.to_owned(),
        kernel: read("/proc/sys/kernel/osrelease")
            .map(|k| k.trim().to_owned())
            .filter(|k| !k.is_empty()),
        disk_encryption: disk_encryption(&mounts, &SysBlock::new("/sys/block")),
        firewall: firewall(
            read("/proc/net/ip_tables_names").as_deref(),
            read("/proc/net/ip6_tables_names").as_deref(),
            read("/sys/module/nf_tables/refcnt").as_deref(),
        ),
        screen_lock: None,
    }
}

/// This machine's host name (`/proc/sys/kernel/hostname`, else
/// `/etc/hostname`), or `localhost` when neither says.
pub fn hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| fs::read_to_string(p).ok())
        .map(|h| h.trim().to_owned())
        .find(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// The OS version from the text of `os-release`: `PRETTY_NAME`, else
/// `VERSION_ID`, unquoted.
pub fn os_version(os_release: &str) -> Option<String> {
    let value = |key: &str| {
        os_release.lines().find_map(|line| {
            let (k, v) = line.trim().split_once('=')?;
            (k == key).then(|| unquote(v)).filter(|v| !v.is_empty())
        })
    };
    value("PRETTY_NAME").or_else(|| value("VERSION_ID"))
}

/// Removes shell quoting from an os-release value (`"..."` with `\"`,
/// `\\`, `` \` `` and `\$` escapes, or `'...'`).
fn unquote(v: &str) -> String {
    let v = v.trim();
    if let Some(inner) = v.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')) {
        return inner.to_owned();
    }
    let inner = match v.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        Some(inner) => inner,
        None => return v.to_owned(),
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                if !matches!(next, '"' | '\\' | '`' | '$') {
                    out.push('\\');
                }
                out.push(next);
                continue;
            }
        }
        out.push(c);
    }
    out
}

/// One line of `/proc/mounts`: device, mount point, file system type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub device: String,
    pub mount_point: String,
    pub fs_type: String,
}

/// Parses `/proc/mounts` (octal escapes such as `\040` undone).
pub fn parse_mounts(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_ascii_whitespace();
            Some(Mount {
                device: unescape_mount(fields.next()?),
                mount_point: unescape_mount(fields.next()?),
                fs_type: fields.next()?.to_owned(),
            })
        })
        .collect()
}

fn unescape_mount(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if let (b'\\', Some(digits)) = (bytes[i], bytes.get(i + 1..i + 4)) {
            let value = digits.iter().try_fold(0u16, |acc, &d| {
                (b'0'..=b'7').contains(&d).then(|| acc * 8 + u16::from(d - b'0'))
            });
            if let Some(b) = value.and_then(|v| u8::try_from(v).ok()) {
                out.push(b);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The mount of `/`: the last one listed (a later mount hides an earlier one).
pub fn root_mount(mounts: &str) -> Option<Mount> {
    parse_mounts(mounts).into_iter().rev().find(|m| m.mount_point == "/")
}

/// What the agent reads under `/sys/block` (a trait so tests can give sample
/// contents).
pub trait BlockInfo {
    /// The kernel names of device-mapper devices (`dm-0`, ...).
    fn dm_devices(&self) -> Vec<String>;
    /// `/sys/block/<dev>/dm/<file>` (`name` or `uuid`), trimmed.
    fn dm_attr(&self, dev: &str, file: &str) -> Option<String>;
    /// The kernel names in `/sys/block/<dev>/slaves/`.
    fn slaves(&self, dev: &str) -> Vec<String>;
}

/// [`BlockInfo`] read from a `/sys/block` directory.
#[derive(Debug, Clone)]
pub struct SysBlock {
    root: PathBuf,
}

impl SysBlock {
    pub fn new(root: impl AsRef<Path>) -> SysBlock {
        SysBlock {
            root: root.as_ref().to_path_buf(),
        }
    }

    fn names(&self, dir: &Path) -> Vec<String> {
        let Ok(entries) = fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl BlockInfo for SysBlock {
    fn dm_devices(&self) -> Vec<String> {
        self.names(&self.root)
            .into_iter()
            .filter(|n| n.starts_with("dm-"))
            .collect()
    }

    fn dm_attr(&self, dev: &str, file: &str) -> Option<String> {
        fs::read_to_string(self.root.join(dev).join("dm").join(file))
            .ok()
            .map(|s| s.trim().to_owned())
    }

    fn slaves(&self, dev: &str) -> Vec<String> {
        self.names(&self.root.join(dev).join("slaves"))
    }
}

/// Whether the root file system is on an encrypted device: see the module
/// documentation.
pub fn disk_encryption(mounts: &str, block: &dyn BlockInfo) -> Option<bool> {
    let root = root_mount(mounts)?;
    let dev = root.device.as_str();
    let dm = if let Some(name) = dev.strip_prefix("/dev/mapper/") {
        block
            .dm_devices()
            .into_iter()
            .find(|d| block.dm_attr(d, "name").as_deref() == Some(name))
    } else if let Some(kernel_name) = dev.strip_prefix("/dev/").filter(|d| d.starts_with("dm-")) {
        Some(kernel_name.to_owned())
    } else if is_plain_disk(dev) {
        return Some(false);
    } else {
        // overlay, tmpfs, a network or ZFS root, `/dev/root`...: cannot tell.
        return None;
    };
    // A /dev/mapper name that /sys/block does not know: cannot tell.
    let dm = dm?;
    Some(dm_stack_has_crypt(block, &dm, 0))
}

/// Whether a dm device or anything it is built on (`slaves/`) is dm-crypt.
fn dm_stack_has_crypt(block: &dyn BlockInfo, dev: &str, depth: usize) -> bool {
    if depth > 8 {
        return false;
    }
    if block.dm_attr(dev, "uuid").is_some_and(|u| u.starts_with("CRYPT-")) {
        return true;
    }
    block
        .slaves(dev)
        .iter()
        .filter(|s| s.starts_with("dm-"))
        .any(|s| dm_stack_has_crypt(block, s, depth + 1))
}

/// A partition or whole disk of a local block device, which is not
/// encrypted below the file system.
fn is_plain_disk(dev: &str) -> bool {
    let Some(name) = dev.strip_prefix("/dev/") else {
        return false;
    };
    ["sd", "vd", "xvd", "hd", "nvme", "mmcblk"]
        .iter()
        .any(|prefix| name.starts_with(prefix))
}

/// Whether a host firewall is active, from the contents of
/// `/proc/net/ip_tables_names`, `/proc/net/ip6_tables_names` and
/// `/sys/module/nf_tables/refcnt` (each `None` when absent).
pub fn firewall(ip_tables: Option<&str>, ip6_tables: Option<&str>, nf_tables_refcnt: Option<&str>) -> Option<bool> {
    let has_tables = |t: Option<&str>| t.is_some_and(|t| t.lines().any(|l| !l.trim().is_empty()));
    if has_tables(ip_tables) || has_tables(ip6_tables) {
        return Some(true);
    }
    // nf_tables expression and chain modules hold references to it only once
    // rules use them.
    if nf_tables_refcnt
        .and_then(|r| r.trim().parse::<u64>().ok())
        .is_some_and(|n| n > 0)
    {
        return Some(true);
    }
    None
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn os_version_prefers_pretty_name() {
        let debian = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\n";
        assert_eq!(os_version(debian).as_deref(), Some("Debian GNU/Linux 12 (bookworm)"));
        let bare = "NAME=Alpine\nVERSION_ID=3.20.1\n";
        assert_eq!(os_version(bare).as_deref(), Some("3.20.1"));
        let quoted = "PRETTY_NAME='Arch Linux'\n";
        assert_eq!(os_version(quoted).as_deref(), Some("Arch Linux"));
        let escaped = "PRETTY_NAME=\"A \\\"quoted\\\" \\$name\"\n";
        assert_eq!(os_version(escaped).as_deref(), Some("A \"quoted\" $name"));
        assert_eq!(os_version("PRETTY_NAME=\"\"\nVERSION_ID=\"9\""), Some("9".to_owned()));
        assert_eq!(os_version("# nothing\n"), None);
    }

    #[test]
    fn root_mount_is_the_last_mount_on_slash() {
        let mounts = "sysfs /sys sysfs rw 0 0\n/dev/sda2 / ext4 rw 0 0\n/dev/mapper/root / btrfs rw 0 0\n\
                      /dev/sda1 /boot ext4 rw 0 0\n/dev/sdb1 /mnt/my\\040disk ext4 rw 0 0\n";
        let root = root_mount(mounts).unwrap();
        assert_eq!(root.device, "/dev/mapper/root");
        assert_eq!(root.fs_type, "btrfs");
        let all = parse_mounts(mounts);
        assert_eq!(all[4].mount_point, "/mnt/my disk");
        assert_eq!(root_mount("proc /proc proc rw 0 0\n"), None);
    }

    /// Sample `/sys/block`: dm-0 is LUKS (`luks-1234`), dm-1 is an LVM volume
    /// on it (`vg-root`), dm-2 is plain LVM on a disk (`vg2-data`).
    struct Sample(HashMap<&'static str, (&'static str, &'static str, Vec<String>)>);

    fn sample() -> Sample {
        let mut m = HashMap::new();
        m.insert("dm-0", ("luks-1234", "CRYPT-LUKS2-abcd-luks-1234", vec![]));
        m.insert("dm-1", ("vg-root", "LVM-xyz", vec!["dm-0".to_owned()]));
        m.insert("dm-2", ("vg2-data", "LVM-qrs", vec!["sda3".to_owned()]));
        Sample(m)
    }

    impl BlockInfo for Sample {
        fn dm_devices(&self) -> Vec<String> {
            let mut v: Vec<String> = self.0.keys().map(|k| (*k).to_owned()).collect();
            v.sort();
            v
        }
        fn dm_attr(&self, dev: &str, file: &str) -> Option<String> {
            let (name, uuid, _) = self.0.get(dev)?;
            match file {
                "name" => Some((*name).to_owned()),
                "uuid" => Some((*uuid).to_owned()),
                _ => None,
            }
        }
        fn slaves(&self, dev: &str) -> Vec<String> {
            self.0.get(dev).map(|(_, _, s)| s.clone()).unwrap_or_default()
        }
    }

    #[test]
    fn disk_encryption_follows_the_device_mapper_stack() {
        let block = sample();
        let root_on = |dev: &str| format!("proc /proc proc rw 0 0\n{dev} / ext4 rw,relatime 0 0\n");
        assert_eq!(disk_encryption(&root_on("/dev/mapper/luks-1234"), &block), Some(true));
        assert_eq!(disk_encryption(&root_on("/dev/mapper/vg-root"), &block), Some(true));
        assert_eq!(disk_encryption(&root_on("/dev/dm-1"), &block), Some(true));
        assert_eq!(disk_encryption(&root_on("/dev/mapper/vg2-data"), &block), Some(false));
        assert_eq!(disk_encryption(&root_on("/dev/sda2"), &block), Some(false));
        assert_eq!(disk_encryption(&root_on("/dev/nvme0n1p3"), &block), Some(false));
        assert_eq!(disk_encryption(&root_on("/dev/vda"), &block), Some(false));
        assert_eq!(disk_encryption(&root_on("/dev/mapper/unknown"), &block), None);
        assert_eq!(disk_encryption(&root_on("overlay"), &block), None);
        assert_eq!(disk_encryption(&root_on("/dev/root"), &block), None);
        assert_eq!(disk_encryption("", &block), None);
    }

    #[test]
    fn sys_block_reads_a_directory_tree() {
        let dir = tempfile::tempdir().unwrap();
        let dm0 = dir.path().join("dm-0");
        fs::create_dir_all(dm0.join("dm")).unwrap();
        fs::create_dir_all(dm0.join("slaves").join("sda2")).unwrap();
        fs::write(dm0.join("dm").join("name"), "cryptroot\n").unwrap();
        fs::write(dm0.join("dm").join("uuid"), "CRYPT-LUKS2-00-cryptroot\n").unwrap();
        fs::create_dir_all(dir.path().join("sda")).unwrap();
        let block = SysBlock::new(dir.path());
        assert_eq!(block.dm_devices(), ["dm-0"]);
        assert_eq!(block.slaves("dm-0"), ["sda2"]);
        let mounts = "/dev/mapper/cryptroot / ext4 rw 0 0\n";
        assert_eq!(disk_encryption(mounts, &block), Some(true));
    }

    #[test]
    fn firewall_from_netfilter_hints() {
        assert_eq!(firewall(Some("filter\nnat\n"), None, None), Some(true));
        assert_eq!(firewall(Some(""), Some("filter\n"), None), Some(true));
        assert_eq!(firewall(Some(""), Some(""), Some("3\n")), Some(true));
        assert_eq!(firewall(Some(""), Some(""), Some("0\n")), None);
        assert_eq!(firewall(None, None, None), None);
    }

    #[test]
    fn collect_fills_what_it_can() {
        let p = collect();
        assert_eq!(p.os, std::env::consts::OS);
        assert_eq!(p.agent_version, AGENT_VERSION);
        assert!(!p.hostname.is_empty());
        assert!(!p.os_version.is_empty());
        assert_eq!(p.screen_lock, None);
    }
}
