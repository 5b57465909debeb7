//! A real, small filesystem that a test can fill up: a tmpfs of a few MiB
//! mounted on a temporary folder. Mounting needs root (CAP_SYS_ADMIN);
//! [`SmallFs::mount`] says why when it is not allowed, so that the caller
//! can skip with a clear message.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct SmallFs {
    /// Unmounted before the folder is removed (fields drop after `drop`).
    dir: tempfile::TempDir,
    filler: PathBuf,
}

impl SmallFs {
    pub fn mount(bytes: u64) -> Result<SmallFs, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={bytes},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let filler = dir.path().join("filler");
        Ok(SmallFs { dir, filler })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Bytes an unprivileged writer may still use.
    pub fn available(&self) -> u64 {
        let st = rustix::fs::statvfs(self.path()).expect("statvfs");
        st.f_bavail * st.f_frsize
    }

    /// Writes a file until the filesystem says it is full (ENOSPC); returns
    /// its size. Nothing else can then grow a file here until [`Self::free`].
    pub fn fill(&self) -> u64 {
        let mut f = std::fs::File::create(&self.filler).expect("create the filler file");
        let chunk = vec![0xa5u8; 64 * 1024];
        let mut written = 0u64;
        // Bounded by the filesystem's size: every pass writes at least a byte
        // or ends.
        loop {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOSPC.raw_os_error()) => {
                    break;
                }
                Err(e) => panic!("filling the filesystem: {e}"),
            }
        }
        // Smaller writes take the last partial chunk's worth.
        for size in [4096usize, 512, 1] {
            while let Ok(n @ 1..) = f.write(&chunk[..size]) {
                written += n as u64;
            }
        }
        written
    }

    /// Deletes the filler file: the space is back.
    pub fn free(&self) {
        std::fs::remove_file(&self.filler).expect("remove the filler file");
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        // Lazy, so that a process still holding a file there (a server that
        // outlived a failed test) cannot keep the mount behind.
        let out = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .output();
        if !out.is_ok_and(|o| o.status.success()) {
            eprintln!(
                "could not unmount the test's tmpfs at {}",
                self.path().display()
            );
        }
    }
}
