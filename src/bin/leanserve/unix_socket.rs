//! The admin surface's Unix socket (`admin.bind = "unix:PATH"`): created owner-only
//! (mode 0600) with no moment in which anyone else could connect, a stale socket left by
//! an earlier run replaced, a live one or any other file left alone, and removed when the
//! server stops.
//!
//! The socket is bound inside a fresh private folder (mode 0700) next to `PATH`, its mode
//! set, then renamed into place: a socket bound at `PATH` directly would take the umask's
//! mode until changed.

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// A listening Unix socket at its path; dropping it removes the path if it is still this
/// socket.
pub struct Socket {
    path: PathBuf,
    listener: UnixListener,
    /// (device, inode) of the socket file, to remove only this one.
    identity: (u64, u64),
}

impl Socket {
    pub fn bind(path: &Path) -> io::Result<Socket> {
        match fs::symlink_metadata(path) {
            Ok(metadata) if !metadata.file_type().is_socket() => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "the path exists and is not a socket",
                ));
            }
            Ok(_) => match UnixStream::connect(path) {
                Ok(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::AddrInUse,
                        "another server listens on this socket",
                    ));
                }
                // Nobody listens: a socket left by a run that did not stop cleanly.
                Err(_) => fs::remove_file(path)?,
            },
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
        let parent = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        let private = tempfile::Builder::new()
            .prefix(".leanserve-admin-")
            .tempdir_in(parent)?;
        let staged = private.path().join("s");
        let listener = UnixListener::bind(&staged)?;
        fs::set_permissions(&staged, fs::Permissions::from_mode(0o600))?;
        fs::rename(&staged, path)?;
        listener.set_nonblocking(true)?;
        let metadata = fs::symlink_metadata(path)?;
        Ok(Socket {
            path: path.to_owned(),
            listener,
            identity: (metadata.dev(), metadata.ino()),
        })
    }

    /// The listener, for `HttpServer::listen_uds`.
    pub fn listener(&self) -> io::Result<UnixListener> {
        self.listener.try_clone()
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        let ours = fs::symlink_metadata(&self.path)
            .is_ok_and(|metadata| (metadata.dev(), metadata.ino()) == self.identity);
        if ours {
            let _ = fs::remove_file(&self.path);
        }
    }
}
