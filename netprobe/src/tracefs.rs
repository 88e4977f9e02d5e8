//! Classic tracepoints: where tracefs is, and the field layout from an event's format file.

use std::{collections::HashMap, fs, path::PathBuf};

use crate::error::Error;

const MOUNTS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// The tracefs root, mounting it at /sys/kernel/tracing when nothing is mounted (as on
/// minimal node images); classic tracepoints cannot attach without it.
pub fn root() -> Result<PathBuf, Error> {
    if let Some(found) = mounted() {
        return Ok(found);
    }
    let target = std::ffi::CString::new(MOUNTS[0]).expect("no NUL");
    let fstype = std::ffi::CString::new("tracefs").expect("no NUL");
    let rc = unsafe {
        libc::mount(fstype.as_ptr(), target.as_ptr(), fstype.as_ptr(), 0, std::ptr::null())
    };
    if rc != 0 {
        return Err(Error::Tracefs(format!(
            "not mounted, and mounting it at {} failed: {}",
            MOUNTS[0],
            std::io::Error::last_os_error()
        )));
    }
    mounted().ok_or_else(|| Error::Tracefs("mounted, but has no events/".into()))
}

pub fn mounted() -> Option<PathBuf> {
    MOUNTS.iter().map(PathBuf::from).find(|p| p.join("events").is_dir())
}

/// Field name to (offset, size), from `events/<category>/<name>/format`.
pub fn format(category: &str, name: &str) -> Result<HashMap<String, (u32, u32)>, Error> {
    let path = root()?.join("events").join(category).join(name).join("format");
    let text = fs::read_to_string(&path)
        .map_err(|e| Error::Tracefs(format!("{}: {e}", path.display())))?;
    Ok(parse_format(&text))
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
}
