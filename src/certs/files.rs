//! Certificate files on disk: written atomically (a complete new file is renamed over
//! the old one, so the reloader never reads half a file), private keys readable by
//! their owner only (mode 0600) and owned by whoever owned the file they replace, and
//! a cheap stamp to notice changes.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Writes a private key: mode 0600, replacing any old file.
pub(crate) fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    write_atomic(path, data, 0o600)
}

/// Writes a certificate: mode 0644, replacing any old file.
pub(crate) fn write_public(path: &Path, data: &[u8]) -> std::io::Result<()> {
    write_atomic(path, data, 0o644)
}

fn write_atomic(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = Path::new(&tmp);
    let _ = fs::remove_file(tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(tmp)?;
    // The umask may have narrowed the mode at creation; set it exactly.
    f.set_permissions(fs::Permissions::from_mode(mode))?;
    // Keep the owner of the file being replaced: `sudo lanrelay certs --renew` must
    // not leave a service's key readable by root only. (Fails harmlessly when not
    // root, and then the owner is already the caller.)
    if let Ok(old) = fs::metadata(path) {
        let _ = std::os::unix::fs::fchown(&f, Some(old.uid()), Some(old.gid()));
    }
    f.write_all(data)?;
    f.sync_all()?;
    drop(f);
    fs::rename(tmp, path)
}

/// What identifies one version of a file: changes when it is rewritten or replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    modified_ns: i128,
    len: u64,
    inode: u64,
}

/// The file's stamp, `None` when it cannot be read.
pub(crate) fn stamp(path: &Path) -> Option<Stamp> {
    let m = fs::metadata(path).ok()?;
    Some(Stamp {
        modified_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        len: m.len(),
        inode: m.ino(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_files_are_0600_and_replaced_whole() {
        let dir = std::env::temp_dir().join(format!("lanrelay-files-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let key = dir.join("k.pem");
        write_private(&key, b"one").unwrap();
        let first = stamp(&key).unwrap();
        assert_eq!(
            fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        write_private(&key, b"two!").unwrap();
        assert_eq!(fs::read(&key).unwrap(), b"two!");
        assert_eq!(
            fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_ne!(stamp(&key).unwrap(), first);
        let crt = dir.join("c.pem");
        write_public(&crt, b"cert").unwrap();
        assert_eq!(
            fs::metadata(&crt).unwrap().permissions().mode() & 0o777,
            0o644
        );
        assert!(stamp(&dir.join("absent")).is_none());
        // No temporary files are left behind.
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 2);
        fs::remove_dir_all(&dir).unwrap();
    }
}
