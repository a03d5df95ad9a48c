//! http_static in a real browser (issue 16): headless Chromium loads a
//! small site (`tests/site`: HTML, CSS, a PNG, a script that fetches JSON
//! and writes what arrived into the page). The DOM it dumps says each
//! resource came with its type (the server sends `nosniff`, so a style
//! sheet or script of the wrong type would not apply or run), and the
//! server's log shows each request. Needs Debian's `chromium` (`.ci/run`
//! installs it); the test fails without it.

mod common;
mod http_static_util;

use http_static_util::*;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Without these Chromium's connections are refused on these machines.
const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=10000", // run the page's fetches before dumping
];

/// Runs Chromium with a fresh profile on `args`, bounded in time (its
/// whole process group is killed past `limit`); its stdout.
fn chromium(args: &[&str], limit: Duration) -> String {
    let profile = tempfile::tempdir().unwrap();
    let child = Command::new("chromium")
        .args(FLAGS)
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("chromium is required for the browser test (Debian package `chromium`; .ci/run installs it)");
    let pgid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    let Ok(out) = rx.recv_timeout(limit) else {
        // SAFETY: signalling the process group of our own child.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        panic!("chromium did not finish in {limit:?}");
    };
    let out = out.expect("wait for chromium");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "chromium failed: {stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Copies the directory `from` (files and subdirectories) to `to`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn chromium_loads_the_site_with_every_resource_and_its_type() {
    let dir = tempfile::tempdir().unwrap();
    let site = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/site");
    copy_dir(&site, &dir.path().join("root"));
    let web = Web::start(dir.path(), &[]);
    let limit = Duration::from_secs(60);
    let dom = chromium(&["--dump-dom", &web.url("/")], limit);
    assert!(
        dom.contains("<title>done</title>"),
        "the script did not finish: {dom}"
    );
    for (row, value) in [
        ("json", "hello from data/info.json"),
        ("json-type", "application/json"),
        ("css-color", "rgb(0, 128, 0)"),
        ("img-size", "120x60"),
    ] {
        let cells = format!("<tr id=\"{row}\"><td>{row}</td><td>{value}</td></tr>");
        assert!(dom.contains(&cells), "{row} is not {value}: {dom}");
    }
    for path in ["/", "/style.css", "/logo.png", "/app.js", "/data/info.json"] {
        let line = format!("GET {path} -> 200");
        assert!(
            web.says(&line),
            "the server did not see {path}: {}",
            web.log()
        );
    }
    // The screenshot kept in docs/http_static_browser.png, made afresh here.
    let shot = dir.path().join("shot.png");
    let arg = format!("--screenshot={}", shot.display());
    chromium(
        &[
            "--hide-scrollbars",
            "--window-size=800,600",
            &arg,
            &web.url("/"),
        ],
        limit,
    );
    let png = std::fs::read(&shot).expect("chromium wrote no screenshot");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let size = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    assert_eq!((size(16), size(20)), (800, 600), "screenshot size");
}
