//! What a newcomer meets first with http_static (issue 12): errors in one
//! line naming what failed, `--help` on every flag, no hidden files.

mod common;
mod http_static_util;

use common::*;
use http_static_util::*;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Runs the example to its end (bounded); its exit code and stderr.
fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let mut cmd = Command::new(example_path("http_static"));
    cmd.args(args).stderr(Stdio::piped());
    let out = run_bounded(cmd, b"", Duration::from_secs(10));
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

#[test]
fn a_root_that_is_not_a_directory_is_one_line_naming_it_and_exit_1() {
    let (code, _, err) = run(&["--addr", "127.0.0.1:0", "--root", "/nonexistent"]);
    assert_eq!(code, Some(1));
    assert_eq!(err, "error: cannot serve /nonexistent: no such directory\n");
    let file = tempfile::NamedTempFile::new().unwrap();
    let path = file.path().to_str().unwrap();
    let (code, _, err) = run(&["--addr", "127.0.0.1:0", "--root", path]);
    assert_eq!(code, Some(1));
    assert_eq!(
        err,
        format!("error: cannot serve {path}: not a directory\n")
    );
}

#[test]
fn a_busy_port_is_one_line_naming_the_address_and_exit_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, _, err) = run(&["--addr", &addr, "--root", "."]);
    assert_eq!(code, Some(1));
    assert_eq!(
        err,
        format!("error: cannot listen on {addr}: address already in use\n")
    );
}

#[test]
fn help_describes_the_server_and_every_flag() {
    let (code, out, _) = run(&["--help"]);
    assert_eq!(code, Some(0));
    assert!(
        out.starts_with("Serves the files under a directory"),
        "{out}"
    );
    // Each flag's line is followed by its help, indented deeper.
    let lines: Vec<&str> = out.lines().collect();
    let mut flags = 0;
    for (i, line) in lines.iter().enumerate() {
        if line.trim_start().starts_with('-') {
            let help = lines.get(i + 1).copied().unwrap_or("");
            let (indent, deeper) = (
                line.len() - line.trim_start().len(),
                help.len() - help.trim_start().len(),
            );
            assert!(
                deeper > indent && !help.trim().is_empty(),
                "no help for {line}"
            );
            flags += 1;
        }
    }
    assert!(flags >= 9, "{out}");
    let (code, _, err) = run(&["--bogus"]);
    assert_eq!(code, Some(2), "{err}");
}

#[test]
fn dotfiles_and_dot_directories_are_404_unless_allowed() {
    let dir = site();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join(".git")).unwrap();
    std::fs::create_dir_all(root.join("sub/.hid")).unwrap();
    std::fs::write(root.join(".git/config"), b"[core]\n").unwrap();
    std::fs::write(root.join(".env"), b"TOKEN=1\n").unwrap();
    std::fs::write(root.join("sub/.hid/x.txt"), b"x\n").unwrap();
    std::os::unix::fs::symlink(".git/config", root.join("config.txt")).unwrap();
    let hidden = [
        "/.git/config",
        "/.env",
        "/sub/.hid/x.txt",
        "/.git/",
        "/config.txt",
    ];
    let web = Web::start(dir.path(), &[]);
    for path in hidden {
        let r = curl(&[&web.url(path)]);
        assert_eq!(r.status, 404, "{path}");
        assert!(!r.body.starts_with(b"[core]") && !r.body.starts_with(b"TOKEN"));
    }
    let r = curl(&[&web.url("/HelloWorld.html")]);
    assert_eq!((r.status, &r.body[..]), (200, PAGE));
    let web = Web::start(dir.path(), &["--allow-hidden"]);
    for (path, body) in [
        ("/.git/config", &b"[core]\n"[..]),
        ("/.env", b"TOKEN=1\n"),
        ("/config.txt", b"[core]\n"),
    ] {
        let r = curl(&[&web.url(path)]);
        assert_eq!((r.status, &r.body[..]), (200, body), "{path}");
    }
}
