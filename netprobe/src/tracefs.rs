//! Classic tracepoints: where tracefs is, and the field layout from an event's format file.

use std::{
    collections::HashMap,
    ffi::CString,
    fs, io,
    path::{Path, PathBuf},
};

use crate::error::Error;

const MOUNTS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// A readable tracefs: found mounted, or mounted by this process at /sys/kernel/tracing
/// when nothing was (as on minimal node images) and unmounted again when dropped.
pub struct Tracefs {
    root: PathBuf,
    mounted_here: bool,
}

/// Why tracefs cannot be read, and the capability that would let this process read it.
#[derive(Debug, Clone)]
pub struct Unreadable {
    pub why: String,
    pub capability: Option<&'static str>,
}

impl Tracefs {
    pub fn open() -> Result<Self, Unreadable> {
        let tracefs = match mounted() {
            Some(root) => Self { root, mounted_here: false },
            None => Self { root: mount()?, mounted_here: true },
        };
        let events = tracefs.root.join("events");
        match fs::read_dir(&events) {
            Ok(_) => Ok(tracefs),
            // Mode 0700 root: another user needs CAP_DAC_READ_SEARCH even to look inside.
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Err(Unreadable {
                why: format!(
                    "{} is not readable as uid {} ({e}): reading it takes CAP_DAC_READ_SEARCH",
                    events.display(),
                    unsafe { libc::geteuid() }
                ),
                capability: Some("CAP_DAC_READ_SEARCH"),
            }),
            Err(e) => {
                Err(Unreadable { why: format!("{}: {e}", events.display()), capability: None })
            }
        }
    }

    /// Field name to (offset, size), from `events/<category>/<name>/format`.
    pub fn format(&self, category: &str, name: &str) -> Result<HashMap<String, (u32, u32)>, Error> {
        let path = self.root.join("events").join(category).join(name).join("format");
        let text = fs::read_to_string(&path)
            .map_err(|e| Error::Tracefs(format!("{}: {e}", path.display())))?;
        Ok(parse_format(&text))
    }
}

impl Drop for Tracefs {
    fn drop(&mut self) {
        if self.mounted_here {
            // Links made through it hold no reference to the mount. Busy (another process in
            // this mount namespace has a file open there): left mounted.
            let target = CString::new(self.root.as_os_str().as_encoded_bytes()).expect("no NUL");
            unsafe { libc::umount2(target.as_ptr(), 0) };
        }
    }
}

/// Where tracefs is mounted: a tracefs mount point in the mount table, or a directory with
/// `events/` in it (debugfs's `tracing` mounts tracefs when first looked into).
pub fn mounted() -> Option<PathBuf> {
    let table = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let points = tracefs_mount_points(&table);
    MOUNTS
        .iter()
        .find(|m| points.iter().any(|p| p == *m) || Path::new(m).join("events").is_dir())
        .map(PathBuf::from)
}

/// The mount points of tracefs in /proc/self/mountinfo: the fifth field, where the
/// filesystem type after ` - ` is tracefs.
fn tracefs_mount_points(mountinfo: &str) -> Vec<String> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (mount, fs) = line.split_once(" - ")?;
            (fs.split(' ').next()? == "tracefs")
                .then(|| mount.split(' ').nth(4).map(str::to_owned))?
        })
        .collect()
}

fn mount() -> Result<PathBuf, Unreadable> {
    let target = CString::new(MOUNTS[0]).expect("no NUL");
    let fstype = CString::new("tracefs").expect("no NUL");
    let rc = unsafe {
        libc::mount(fstype.as_ptr(), target.as_ptr(), fstype.as_ptr(), 0, std::ptr::null())
    };
    if rc == 0 {
        return Ok(PathBuf::from(MOUNTS[0]));
    }
    let e = io::Error::last_os_error();
    let capability = (e.raw_os_error() == Some(libc::EPERM)).then_some("CAP_SYS_ADMIN");
    let takes = if capability.is_some() { " takes CAP_SYS_ADMIN" } else { " failed" };
    Err(Unreadable {
        why: format!("not mounted, and mounting it at {}{takes}: {e}", MOUNTS[0]),
        capability,
    })
}

fn parse_format(text: &str) -> HashMap<String, (u32, u32)> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.trim().split(';').map(str::trim);
            let decl = parts.next()?.strip_prefix("field:")?;
            let name = decl.rsplit(' ').next()?.split('[').next()?;
            let mut num = |key: &str| parts.next()?.strip_prefix(key)?.parse::<u32>().ok();
            Some((name.to_owned(), (num("offset:")?, num("size:")?)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kfree_skb_format() {
        let f = parse_format(
            "name: kfree_skb\nID: 2310\nformat:\n\
             \tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\n\
             \tfield:void * skbaddr;\toffset:8;\tsize:8;\tsigned:0;\n\
             \tfield:enum skb_drop_reason reason;\toffset:36;\tsize:4;\tsigned:0;\n\
             \tfield:char name[16];\toffset:40;\tsize:16;\tsigned:0;\n\n\
             print fmt: \"skbaddr=%p\"",
        );
        assert_eq!(f["skbaddr"], (8, 8));
        assert_eq!(f["reason"], (36, 4));
        assert_eq!(f["name"], (40, 16));
        assert_eq!(f["common_type"], (0, 2));
    }

    #[test]
    fn finds_tracefs_in_the_mount_table() {
        let table = "23 29 0:21 / /sys rw,nosuid shared:7 - sysfs sysfs rw\n\
                     49 23 0:13 / /sys/kernel/tracing rw,relatime - tracefs tracefs rw\n\
                     50 23 0:14 / /sys/kernel/debug rw - debugfs debugfs rw\n";
        assert_eq!(tracefs_mount_points(table), vec!["/sys/kernel/tracing".to_owned()]);
        assert!(tracefs_mount_points("").is_empty());
    }
}
