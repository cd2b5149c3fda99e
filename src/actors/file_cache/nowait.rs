//! Loads that cannot block, for a miss on the worker thread that asked.
//!
//! A miss sent to the blocking pool costs four thread handoffs (worker, cache actor,
//! blocking thread, actor, worker); on a site larger than the budget, where one request
//! in seven misses, those handoffs were the largest single cost in a profile. Most misses
//! are of files the kernel already holds in its caches, so they are tried here first,
//! with calls that refuse to wait instead of waiting:
//!
//! - `openat2` with `RESOLVE_BENEATH` and `RESOLVE_NO_SYMLINKS` (the walk cannot leave
//!   the root; a path through a symlink is left to the blocking path, which follows it and
//!   looks for a sidecar beside its target) and `RESOLVE_CACHED` (it fails rather than
//!   read a directory from disk), first with `O_PATH`, so nothing but a regular file is
//!   ever opened for reading;
//! - `fstat` on the descriptor;
//! - `preadv2` with `RWF_NOWAIT`, which fails rather than wait for pages not in the page
//!   cache.
//!
//! Anything else (a file not in the page cache, a directory, a missing or special file,
//! a sidecar `file.gz` beside it, a file over [`NOWAIT_MAX`] bytes, a kernel without these
//! calls) answers `None`, and the caller takes the blocking path, which decides every one
//! of those cases exactly as before. The first miss of a compressible file takes it too:
//! whether `file.gz` exists is not yet in the kernel's lookup cache; after the blocking
//! path has looked, it is. Only Linux has these calls; elsewhere every load is
//! a blocking one.

/// Largest file read on a worker thread: copying and hashing it takes tens of
/// microseconds, a time other requests on that worker can wait.
pub const NOWAIT_MAX: u64 = 256 * 1024;

#[cfg(target_os = "linux")]
pub use linux::Root;

/// Without Linux's non-blocking calls: no load is tried on the worker.
#[cfg(not(target_os = "linux"))]
#[derive(Debug)]
pub struct Root;

#[cfg(not(target_os = "linux"))]
impl Root {
    pub fn open(_: &std::path::Path) -> Option<Root> {
        None
    }

    pub fn load(
        &self,
        _: &str,
        _: Option<std::sync::Arc<super::CachedFile>>,
        _: &crate::config::StaticFileOpts,
        _: u64,
    ) -> Option<super::Found> {
        None
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::ffi::CString;
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use bytes::Bytes;

    use super::NOWAIT_MAX;
    use crate::actors::file_cache::load::{self, Found};
    use crate::actors::file_cache::store::CachedFile;
    use crate::alloc::CacheBuffer;
    use crate::config::StaticFileOpts;

    /// `struct open_how` of linux/openat2.h (libc's is non-exhaustive).
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }

    /// Off for good once the kernel lacks `openat2` or `RESOLVE_CACHED` (before 5.12),
    /// or the filesystem refuses `RWF_NOWAIT`.
    static SUPPORTED: AtomicBool = AtomicBool::new(true);

    /// The static root, held open: every non-blocking load resolves beneath it.
    #[derive(Debug)]
    pub struct Root {
        fd: OwnedFd,
    }

    impl Root {
        /// Opens the (canonical) root; `None` when it cannot be opened, and then every
        /// load is a blocking one.
        pub fn open(root: &Path) -> Option<Root> {
            let path = CString::new(root.as_os_str().as_bytes()).ok()?;
            // SAFETY: a valid NUL-terminated path; the result is checked.
            let fd = unsafe {
                libc::open(
                    path.as_ptr(),
                    libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
                )
            };
            (fd >= 0).then(|| Root {
                // SAFETY: a descriptor this call just opened and nothing else owns.
                fd: unsafe { OwnedFd::from_raw_fd(fd) },
            })
        }

        /// Loads `key` (a relative path from `http::path`) if that needs no waiting;
        /// `None` sends the caller to the blocking path (see the module docs).
        pub fn load(
            &self,
            key: &str,
            existing: Option<Arc<CachedFile>>,
            opts: &StaticFileOpts,
            now_ms: u64,
        ) -> Option<Found> {
            if !SUPPORTED.load(Ordering::Relaxed) || key.is_empty() {
                return None;
            }
            let path = CString::new(key).ok()?;
            let located = self.open_at(&path, libc::O_PATH)?;
            let stat = fstat(&located)?;
            if stat.st_mode & libc::S_IFMT != libc::S_IFREG {
                return None;
            }
            let len = u64::try_from(stat.st_size).ok()?;
            let modified = mtime(&stat);
            if let Some(existing) = existing
                && existing.len == len
                && existing.modified == modified
            {
                existing.mark_checked(now_ms);
                return Some(Found::Unchanged(existing));
            }
            if len > opts.max_file_size.min(NOWAIT_MAX) {
                return None;
            }
            let compressible = load::wants_compression(key, len, opts);
            if compressible {
                // A sidecar, or no way to tell without waiting: the blocking path.
                for &coding in &opts.encodings {
                    let sidecar =
                        CString::new(format!("{key}{}", load::sidecar_suffix(coding))).ok()?;
                    match self.try_open_at(&sidecar, libc::O_PATH) {
                        Err(error) if error.raw_os_error() == Some(libc::ENOENT) => {}
                        _ => return None,
                    }
                }
            }
            let file = self.open_at(&path, libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY)?;
            let opened = fstat(&file)?;
            if (opened.st_dev, opened.st_ino) != (stat.st_dev, stat.st_ino)
                || opened.st_size != stat.st_size
            {
                return None; // replaced between the two opens
            }
            let bytes = read_nowait(&file, len as usize)?;
            Some(Found::File(Arc::new(load::entry(
                key,
                bytes,
                modified,
                Default::default(),
                compressible,
                opts,
                now_ms,
            ))))
        }

        fn open_at(&self, path: &CString, flags: libc::c_int) -> Option<OwnedFd> {
            self.try_open_at(path, flags).ok()
        }

        fn try_open_at(&self, path: &CString, flags: libc::c_int) -> io::Result<OwnedFd> {
            let how = OpenHow {
                flags: (flags | libc::O_CLOEXEC) as u64,
                mode: 0,
                resolve: libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_CACHED,
            };
            // SAFETY: openat2(2) with a directory descriptor we own, a NUL-terminated
            // path and an `open_how` of the size passed; the result is checked.
            let fd = unsafe {
                libc::syscall(
                    libc::SYS_openat2,
                    self.fd.as_raw_fd(),
                    path.as_ptr(),
                    &how as *const OpenHow,
                    std::mem::size_of::<OpenHow>(),
                )
            };
            if fd < 0 {
                let error = io::Error::last_os_error();
                if matches!(
                    error.raw_os_error(),
                    Some(libc::ENOSYS | libc::E2BIG | libc::EINVAL)
                ) {
                    // No openat2, or no RESOLVE_CACHED: this kernel cannot do it.
                    disable("openat2 with RESOLVE_CACHED", &error);
                }
                return Err(error);
            }
            // SAFETY: a descriptor this call just opened and nothing else owns.
            Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
        }
    }

    fn disable(what: &str, error: &io::Error) {
        if SUPPORTED.swap(false, Ordering::Relaxed) {
            log::info!(
                "file cache: every miss goes to the blocking pool ({what} is unavailable: {error})"
            );
        }
    }

    fn fstat(fd: &OwnedFd) -> Option<libc::stat> {
        // SAFETY: a zeroed `stat` is a valid value to be overwritten by fstat(2).
        let mut stat: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: an open descriptor and a valid out pointer; the result is checked.
        (unsafe { libc::fstat(fd.as_raw_fd(), &mut stat) } == 0).then_some(stat)
    }

    /// The modification time as `std::fs::Metadata::modified` gives it.
    fn mtime(stat: &libc::stat) -> Option<SystemTime> {
        let (secs, nanos) = (stat.st_mtime, stat.st_mtime_nsec);
        let nanos = u32::try_from(nanos).ok()?;
        if secs >= 0 {
            UNIX_EPOCH.checked_add(Duration::new(secs as u64, nanos))
        } else {
            UNIX_EPOCH
                .checked_sub(Duration::from_secs(secs.unsigned_abs()))?
                .checked_add(Duration::from_nanos(u64::from(nanos)))
        }
    }

    /// Exactly `len` bytes from the start of `file`, or `None` as soon as the kernel
    /// would have to wait for the disk (or the file turns out shorter).
    fn read_nowait(file: &OwnedFd, len: usize) -> Option<Bytes> {
        let mut buffer = CacheBuffer::for_read(len);
        let mut filled = 0;
        while filled < len {
            let spare = &mut buffer.as_mut_slice()[filled..];
            let iov = libc::iovec {
                iov_base: spare.as_mut_ptr().cast(),
                iov_len: spare.len(),
            };
            // SAFETY: preadv2(2) into the unfilled part of the buffer, whose length the
            // iovec states.
            let read = unsafe {
                libc::preadv2(
                    file.as_raw_fd(),
                    &iov,
                    1,
                    filled as libc::off_t,
                    libc::RWF_NOWAIT,
                )
            };
            match read {
                0 => return None, // shorter than its fstat said: it changed meanwhile
                n if n > 0 => filled += n as usize,
                _ => {
                    let error = io::Error::last_os_error();
                    match error.raw_os_error() {
                        Some(libc::EINTR) => continue,
                        Some(libc::EOPNOTSUPP) => disable("preadv2 with RWF_NOWAIT", &error),
                        _ => {} // EAGAIN: not in the page cache
                    }
                    return None;
                }
            }
        }
        Some(buffer.freeze())
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use std::os::unix::fs::symlink;

        fn opts() -> StaticFileOpts {
            crate::config::Opts::default().static_files
        }

        fn loaded(root: &Root, key: &str) -> Option<Arc<CachedFile>> {
            match root.load(key, None, &opts(), 0)? {
                Found::File(file) => Some(file),
                other => panic!("{key}: {other:?}"),
            }
        }

        #[test]
        fn nowait_reads_cached_files_like_the_blocking_load_and_defers_the_rest() {
            let outside = tempfile::tempdir().unwrap();
            std::fs::write(outside.path().join("secret.txt"), "secret").unwrap();
            let site = tempfile::tempdir().unwrap();
            let dir = site.path();
            let css = "a { color: red }\n".repeat(200);
            std::fs::write(dir.join("app.css"), &css).unwrap();
            std::fs::create_dir(dir.join("sub")).unwrap();
            std::fs::write(dir.join("sub/page.html"), "<p>hi</p>").unwrap();
            std::fs::write(dir.join("big.bin"), vec![7u8; NOWAIT_MAX as usize + 1]).unwrap();
            std::fs::write(dir.join("pre.css"), &css).unwrap();
            std::fs::write(dir.join("pre.css.gz"), b"not really gzip").unwrap();
            symlink(outside.path().join("secret.txt"), dir.join("leak.txt")).unwrap();
            symlink("app.css", dir.join("alias.css")).unwrap();
            symlink(dir.join("app.css"), dir.join("absolute.css")).unwrap();
            let root = Root::open(&load::canonical_root(dir).unwrap()).expect("root opens");

            // The first miss of a compressible file asks the disk whether a sidecar
            // exists (the kernel has not looked that name up yet): the blocking path.
            assert!(root.load("app.css", None, &opts(), 0).is_none());
            let canonical = load::canonical_root(dir).unwrap();
            let Ok(Found::File(blocking)) = load::load(&canonical, "app.css", None, &opts(), 0)
            else {
                panic!("the blocking load failed")
            };
            // Now the kernel knows there is none, and the file just written is in the
            // page cache: read here, identical to the blocking load (validators,
            // headers, bytes, compressibility).
            let Some(file) = loaded(&root, "app.css") else {
                eprintln!("this kernel or filesystem cannot do non-blocking loads");
                return;
            };
            assert_eq!(file.identity, blocking.identity);
            assert_eq!(
                (&file.etag, file.digest, &file.content_type),
                (&blocking.etag, blocking.digest, &blocking.content_type)
            );
            assert_eq!((file.len, file.modified), (blocking.len, blocking.modified));
            assert_eq!(file.last_modified, blocking.last_modified);
            assert!(file.compressible && blocking.compressible);
            assert_eq!(
                loaded(&root, "sub/page.html").unwrap().identity.as_deref(),
                Some(&b"<p>hi</p>"[..])
            );
            // Everything else the blocking path decides is left to it, symlinks
            // included (their sidecar is found beside their target).
            load::load(&canonical, "alias.css", None, &opts(), 0).unwrap();
            for key in [
                "alias.css",
                "leak.txt",
                "absolute.css",
                "missing.css",
                "sub",
                "big.bin",
                "pre.css",
                "../etc/passwd",
            ] {
                assert!(root.load(key, None, &opts(), 0).is_none(), "{key}");
            }
            // A cached entry still matching the disk is unchanged, and marked checked.
            let Some(Found::Unchanged(same)) =
                root.load("app.css", Some(file.clone()), &opts(), 99)
            else {
                panic!("not unchanged")
            };
            assert!(Arc::ptr_eq(&same, &file) && file.checked_at_ms() == 99);
        }

        #[test]
        fn nowait_never_opens_a_fifo_for_reading() {
            let site = tempfile::tempdir().unwrap();
            let fifo = CString::new(site.path().join("pipe").as_os_str().as_bytes()).unwrap();
            // SAFETY: a valid path; the result is checked.
            assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
            let root = Root::open(site.path()).unwrap();
            // Opening a FIFO for reading would block (or, non-blocking, succeed); O_PATH
            // and the type check answer at once.
            assert!(root.load("pipe", None, &opts(), 0).is_none());
        }
    }
}
