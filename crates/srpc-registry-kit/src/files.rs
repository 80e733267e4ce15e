//! Files a registry keeps (the cache file, the HTTP registry's state file), written so that a
//! crash leaves the old file or the new one, never half of one, and so that no link planted
//! by someone else is followed.
//!
//! [`write_atomically`] writes a temporary file beside the target — a name with a random
//! part, created exclusively (`O_CREAT | O_EXCL`, which never follows a link) and with
//! `O_NOFOLLOW` — syncs it, and renames it over the target. It refuses a target that is
//! anything but a regular file (a symbolic link, directory, FIFO, socket or device: the
//! error says which), so that `file=/dev/null` does not replace the device.
//! [`read_no_follow`] refuses the same, and never blocks (a FIFO is opened non-blocking and
//! refused).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};

/// Replaces `path` with `bytes`: a crash leaves the old content or the new, and no link is
/// followed. The temporary file is removed when anything fails.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(metadata) if !metadata.is_file() => {
            return Err(not_regular(path, &metadata.file_type(), "replace"));
        }
        Ok(_) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(error),
    }
    let (temporary, mut file) = create_temporary(path)?;
    let written = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .and_then(|()| fs::rename(&temporary, path));
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    written
}

/// Reads `path`, refusing anything but a regular file: a symbolic link in its last
/// component (`O_NOFOLLOW`), a FIFO (opened without blocking), a device, a directory.
pub fn read_no_follow(path: &Path) -> io::Result<Vec<u8>> {
    let file = open_regular(path, OpenOptions::new().read(true), "read")?;
    let mut bytes = Vec::new();
    (&file).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Opens `path` with `options`, without following a link or blocking, and refuses it
/// unless it is a regular file; `doing` says what for, in the error.
pub(crate) fn open_regular(
    path: &Path,
    options: &mut OpenOptions,
    doing: &str,
) -> io::Result<File> {
    no_follow(options);
    let file = match options.open(path) {
        Ok(file) => file,
        Err(error) => {
            // ELOOP from O_NOFOLLOW, or ENXIO from a FIFO no one reads: say what is there.
            return Err(match fs::symlink_metadata(path) {
                Ok(metadata) if !metadata.is_file() => {
                    not_regular(path, &metadata.file_type(), doing)
                }
                _ => error,
            });
        }
    };
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(not_regular(path, &metadata.file_type(), doing));
    }
    Ok(file)
}

/// The error for a path that is not a regular file.
fn not_regular(path: &Path, file_type: &fs::FileType, doing: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "{} is {}, not a regular file: refusing to {doing} it",
            path.display(),
            kind_of(file_type)
        ),
    )
}

/// What a file type is, with its article.
fn kind_of(file_type: &fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return "a FIFO";
        }
        if file_type.is_socket() {
            return "a socket";
        }
        if file_type.is_char_device() {
            return "a character device";
        }
        if file_type.is_block_device() {
            return "a block device";
        }
    }
    if file_type.is_symlink() {
        "a symbolic link"
    } else if file_type.is_dir() {
        "a directory"
    } else if file_type.is_file() {
        "a regular file"
    } else {
        "of an unknown type"
    }
}

/// A new file beside `path`, named `.<name>.<random>.tmp`, created exclusively.
fn create_temporary(path: &Path) -> io::Result<(PathBuf, File)> {
    let name = path
        .file_name()
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} names no file", path.display()),
            )
        })?
        .to_string_lossy()
        .into_owned();
    let dir = path.parent().unwrap_or(Path::new(""));
    let mut last = None;
    // A name taken (by a crashed writer, or planted) is skipped, not reused.
    for _ in 0..8 {
        let temporary = dir.join(format!(".{name}.{:016x}.tmp", fastrand::u64(..)));
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        no_follow(&mut options);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        match options.open(&temporary) {
            Ok(file) => return Ok((temporary, file)),
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => last = Some(error),
            Err(error) => return Err(error),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no temporary name was free")))
}

/// Makes `options` refuse a symbolic link in the path's last component, and never block
/// (a FIFO opens at once, or fails).
pub(crate) fn no_follow(options: &mut OpenOptions) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // The platform's own values (they differ between architectures).
        let bits = (rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits();
        options.custom_flags(i32::try_from(bits).unwrap_or(0));
    }
    #[cfg(not(unix))]
    let _ = options;
}

#[cfg(test)]
mod tests {
    #[cfg(unix)]
    use std::os::unix::fs::FileTypeExt;

    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write_atomically(&path, b"one").unwrap();
        write_atomically(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[cfg(unix)]
    #[test]
    fn a_link_planted_at_the_target_is_refused_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, b"precious").unwrap();
        let path = dir.path().join("state.json");
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        let read = read_no_follow(&path).unwrap_err().to_string();
        assert!(read.contains("is a symbolic link"), "{read}");
        let written = write_atomically(&path, b"state").unwrap_err().to_string();
        assert!(
            written.contains("is a symbolic link, not a regular file: refusing to replace it"),
            "{written}"
        );
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        assert!(
            fs::symlink_metadata(&path)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 2, "no temporary left: {names:?}");
    }

    /// A FIFO is refused at once, never waited on; a device or directory is never
    /// replaced.
    #[cfg(unix)]
    #[test]
    fn what_is_not_a_regular_file_is_neither_read_nor_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
        )
        .unwrap();
        let read = read_no_follow(&fifo).unwrap_err().to_string();
        assert!(
            read.contains("is a FIFO, not a regular file: refusing to read"),
            "{read}"
        );
        let written = write_atomically(&fifo, b"x").unwrap_err().to_string();
        assert!(written.contains("is a FIFO"), "{written}");
        assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
        let null = Path::new("/dev/null");
        let written = write_atomically(null, b"x").unwrap_err().to_string();
        assert!(written.contains("is a character device"), "{written}");
        let read = read_no_follow(null).unwrap_err().to_string();
        assert!(read.contains("is a character device"), "{read}");
        let written = write_atomically(dir.path(), b"x").unwrap_err().to_string();
        assert!(written.contains("is a directory"), "{written}");
    }
}
