//! A job store that cannot be written: a full disk refuses submissions with 507, a
//! read-only one with 503, nothing acknowledged is lost, reads go on, and a running job
//! that cannot checkpoint fails with the reason.
//!
//! The store lives on a tiny tmpfs (root with mount rights, as on CI); without those rights
//! a non-root user gets a read-only directory instead, and the full-disk half is skipped
//! with a message.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::common::{audit, config, start, Api};

/// A tmpfs mounted on a temporary directory, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Self { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn remount(&self, mode: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,{mode}")])
            .arg(self.path())
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Fills the file system holding `dir` until a write fails for lack of space.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let block = vec![0u8; 4096];
    loop {
        match file.write_all(&block).and_then(|()| file.sync_all()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(28) => break,
            Err(e) => panic!("filling the disk: {e}"),
        }
    }
    path
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

#[test]
fn a_store_that_cannot_be_written_refuses_work_and_loses_nothing() {
    let Some(disk) = Tmpfs::mount("4m") else {
        read_only_directory_without_mount_rights();
        return;
    };
    let mut c = config(disk.path());
    c.scheduler.checkpoint_interval_ms = std::num::NonZeroU64::new(10).unwrap();
    let server = start(c);
    let api = Api::new(&server);
    let done = api.post("/v1/audits", &audit(6, json!({"kind": "unk"})));
    let done = done.ok(202)["id"].as_str().unwrap().to_owned();
    assert_eq!(api.wait_finished(&done)["state"], "succeeded");
    let report = api
        .get(&format!("/v1/audits/{done}/report"))
        .ok(200)
        .clone();

    // A job that is running when the disk fills fails with the reason.
    server.state.scheduler.set_hold(true);
    let running = api.post(
        "/v1/audits",
        &audit(40, json!({"kind": "hotflip-word", "beam_width": 3})),
    );
    let running = running.ok(202)["id"].as_str().unwrap().to_owned();
    api.wait_audit(&running, |s| s == "running");
    let filler = fill(disk.path());
    server.state.scheduler.set_hold(false);
    let failed = api.wait_finished(&running);
    assert_eq!(failed["state"], "failed", "{failed}");
    assert!(
        failed["error"].as_str().unwrap().contains("job store"),
        "{failed}"
    );

    // Full: refused with 507, nothing acknowledged; reads go on.
    let before = api.get("/v1/audits").ok(200)["audits"]
        .as_array()
        .unwrap()
        .len();
    let full = api.post("/v1/audits", &audit(2, json!({"kind": "unk"})));
    full.err(507, "storage_full");
    assert!(full.headers.contains_key("retry-after"));
    assert_eq!(
        api.get("/v1/audits").ok(200)["audits"]
            .as_array()
            .unwrap()
            .len(),
        before
    );
    assert_eq!(
        api.get(&format!("/v1/audits/{done}/report")).ok(200),
        &report
    );
    api.post("/v1/models/toy/predict", &json!({"texts": ["fine"]}))
        .ok(200);

    // Read-only: refused with 503.
    std::fs::remove_file(&filler).unwrap();
    disk.remount("ro");
    api.post("/v1/audits", &audit(2, json!({"kind": "unk"})))
        .err(503, "storage_unavailable");
    assert_eq!(
        api.get(&format!("/v1/audits/{done}/report")).ok(200),
        &report
    );

    // Writable again: accepted and run.
    disk.remount("rw");
    let again = api.post("/v1/audits", &audit(2, json!({"kind": "unk"})));
    let again = again.ok(202)["id"].as_str().unwrap().to_owned();
    assert_eq!(api.wait_finished(&again)["state"], "succeeded");
    server.stop();
    std::thread::sleep(Duration::from_millis(10));
}

/// Without mount rights: a read-only directory (meaningless for root, who writes anyway).
fn read_only_directory_without_mount_rights() {
    if is_root() {
        eprintln!("SKIPPED: root without mount rights can simulate neither a full nor a read-only job store");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let data = tempfile::tempdir().unwrap();
    let server = start(config(data.path()));
    let api = Api::new(&server);
    let jobs = data.path().join("jobs");
    std::fs::set_permissions(&jobs, std::fs::Permissions::from_mode(0o555)).unwrap();
    api.post("/v1/audits", &audit(2, json!({"kind": "unk"})))
        .err(503, "storage_unavailable");
    assert!(api.get("/v1/audits").ok(200)["audits"]
        .as_array()
        .unwrap()
        .is_empty());
    std::fs::set_permissions(&jobs, std::fs::Permissions::from_mode(0o755)).unwrap();
}
