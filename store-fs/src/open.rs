//! Opening a store's files for reading: regular files only, and never blocking; and
//! positioned reads (`pread`) of files already open (packs, logs, the collection lock).
//!
//! A store is a directory anyone can put anything into. A FIFO where a value belongs would
//! block a plain `open` until some process writes to it; a link to `/dev/zero` would be read
//! until memory runs out. So files are opened without blocking (`O_NONBLOCK`, which changes
//! nothing for regular files), and anything that is not a regular file once opened is a named
//! error, at once.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read};
use std::path::Path;

use store_core::{Error, Result};

/// Opens `path` for reading; `None` if there is nothing there. Follows symbolic links, but
/// what they lead to must be a regular file. Returns the file and its length.
pub(crate) fn open_regular(path: &Path) -> Result<Option<(File, u64)>> {
    let file = match open_nonblocking(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("open", path, e)),
    };
    let meta = file.metadata().map_err(|e| Error::io("stat", path, e))?;
    if !meta.is_file() {
        return Err(Error::Store(store_core::StoreError::NotAFile {
            path: path.to_path_buf(),
            kind: kind_of(&meta.file_type()),
        }));
    }
    Ok(Some((file, meta.len())))
}

/// Opens `path` for reading without blocking: a FIFO opens at once (and reads as empty);
/// for a regular file the flag changes nothing.
pub(crate) fn open_nonblocking(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    options.open(path)
}

/// Whether `path` is a regular file (following links); `false` if there is nothing there or
/// something else.
pub(crate) fn is_regular(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file())
}

/// Reads all of the regular file at `path`, refusing one longer than `max` bytes (`what`
/// names it in the error); `None` if there is nothing there.
pub(crate) fn read_small(path: &Path, max: u64, what: &str) -> Result<Option<Vec<u8>>> {
    let Some((file, len)) = open_regular(path)? else {
        return Ok(None);
    };
    if len > max {
        return Err(Error::corrupt(
            path,
            format!("{len} bytes, more than {what} may hold ({max})"),
        ));
    }
    let mut out = Vec::with_capacity(len as usize);
    // `take`: the file may grow after the stat.
    file.take(max + 1)
        .read_to_end(&mut out)
        .map_err(|e| Error::io("read", path, e))?;
    if out.len() as u64 > max {
        return Err(Error::corrupt(
            path,
            format!("more than {what} may hold ({max} bytes)"),
        ));
    }
    Ok(Some(out))
}

fn kind_of(t: &std::fs::FileType) -> &'static str {
    if t.is_dir() {
        return "directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "FIFO (named pipe)";
        }
        if t.is_char_device() {
            return "character device";
        }
        if t.is_block_device() {
            return "block device";
        }
        if t.is_socket() {
            return "socket";
        }
    }
    "special file"
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_a_device_and_a_directory_are_named_errors_at_once() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo runs");
        assert!(made.success());
        let e = open_regular(&fifo).unwrap_err().to_string();
        assert!(
            e.contains("is a FIFO (named pipe), not a regular file"),
            "{e}"
        );
        let e = open_regular(Path::new("/dev/zero"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/dev/zero is a character device"), "{e}");
        let e = open_regular(d.path()).unwrap_err().to_string();
        assert!(e.contains("is a directory, not a regular file"), "{e}");
        assert!(open_regular(&d.path().join("none")).unwrap().is_none());
        assert!(!is_regular(&fifo) && !is_regular(d.path()));
    }
}

/// Reads up to `buf.len()` bytes at `offset` (one positioned read); how many it read.
pub(crate) fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        file.read_at(buf, offset)
    }
    #[cfg(windows)]
    {
        use std::os::windows::fs::FileExt;
        file.seek_read(buf, offset)
    }
}

/// Reads exactly `buf.len()` bytes at `offset`.
pub(crate) fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        file.read_exact_at(buf, offset)
    }
    #[cfg(windows)]
    {
        use std::os::windows::fs::FileExt;
        let mut done = 0;
        while done < buf.len() {
            match file.seek_read(&mut buf[done..], offset + done as u64)? {
                0 => return Err(ErrorKind::UnexpectedEof.into()),
                n => done += n,
            }
        }
        Ok(())
    }
}
