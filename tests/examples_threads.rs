//! The examples with `--threads 2`: two loops serve the clients between
//! them, each client whole, and the log shows both loops at work (an id
//! of loop 1 prints as `#1:KEY.GEN`).

mod common;
#[path = "http_static_util/mod.rs"]
mod http_static_util;

use common::*;
use std::io::Write;

/// `echo_select` with its log kept (printed only if the test fails).
fn echo_select(args: &[&str]) -> ExampleServer {
    ExampleServer::start("echo_select", args)
}

/// Connections the log says each of two loops took.
fn per_loop(log: &str, marker: &str) -> [usize; 2] {
    let lines = log.lines().filter(|l| l.contains(marker));
    let on_one = lines.clone().filter(|l| l.contains(" #1:")).count();
    [lines.count() - on_one, on_one]
}

#[test]
fn echo_select_with_two_threads_answers_200_clients_on_both_loops() {
    let server = echo_select(&[
        "--addr",
        "127.0.0.1:0",
        "--threads",
        "2",
        "--max-per-ip",
        "0",
    ]);
    let addr = server.addr;
    let clients: Vec<_> = (0..200)
        .map(|i| {
            std::thread::spawn(move || {
                let mut c = connect(addr);
                assert_eq!(read_n(&mut c, 8), b"hello...");
                let msg = format!("client {i:03}");
                c.write_all(msg.as_bytes()).unwrap();
                assert_eq!(
                    read_n(&mut c, 9 + msg.len()),
                    format!("response:{msg}").as_bytes()
                );
                c // kept open until all are served: the loops hold 200 at once
            })
        })
        .collect();
    let open: Vec<_> = clients.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(wait_for(IO_TIMEOUT, || per_loop(
        &server.stderr.text(),
        "connected from"
    )
    .iter()
    .sum::<usize>()
        == 200));
    let split = per_loop(&server.stderr.text(), "connected from");
    eprintln!("echo_select --threads 2: 200 clients served as {split:?} per loop");
    assert_eq!(
        split,
        [100, 100],
        "least-loaded splits 200 held clients evenly"
    );
    drop(open);
}

#[test]
fn http_static_with_two_threads_serves_every_request_on_both_loops() {
    use http_static_util::{PAGE, Web, curl, read_reply, site};
    let dir = site();
    let web = Web::start(dir.path(), &["--threads", "2"]);
    let addr = web.addr;
    let clients: Vec<_> = (0..100)
        .map(|_| {
            std::thread::spawn(move || {
                let mut c = connect(addr);
                for _ in 0..3 {
                    c.write_all(b"GET /HelloWorld.html HTTP/1.1\r\nHost: x\r\n\r\n")
                        .unwrap();
                    let reply = read_reply(&mut c);
                    assert_eq!(reply.status, 200);
                    assert_eq!(reply.body, PAGE);
                }
                c
            })
        })
        .collect();
    let open: Vec<_> = clients.into_iter().map(|t| t.join().unwrap()).collect();
    let r = curl(&["-s", &web.url("/sub/data.json")]);
    assert_eq!((r.status, r.body.as_slice()), (200, &b"{\"a\":1}"[..]));
    let split = per_loop(&web.log(), "connected from");
    eprintln!("http_static --threads 2: 101 connections as {split:?} per loop");
    assert!(split[0] >= 40 && split[1] >= 40, "{split:?}");
    drop(open);
}

#[test]
fn pin_puts_each_loop_thread_on_a_cpu_of_its_own() {
    let allowed = cpus_allowed(&std::fs::read_to_string("/proc/self/status").unwrap());
    let server = echo_select(&["--addr", "127.0.0.1:0", "--threads", "2", "--pin"]);
    let tasks = format!("/proc/{}/task", server.pid());
    let loop_threads = || {
        let mut pinned = Vec::new();
        for task in std::fs::read_dir(&tasks).unwrap().map_while(Result::ok) {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if let Some(i) = comm.trim().strip_prefix("ioplex-loop-") {
                let status = std::fs::read_to_string(task.path().join("status")).unwrap();
                pinned.push((i.parse::<usize>().unwrap(), cpus_allowed(&status)));
            }
        }
        pinned.sort();
        pinned
    };
    // The loops start (and pin themselves) just after `listening on`.
    let mut pinned = loop_threads();
    wait_for(IO_TIMEOUT, || {
        pinned = loop_threads();
        pinned.len() == 2 && pinned.iter().all(|(_, c)| c.len() == 1)
    });
    eprintln!("allowed CPUs {allowed:?}; loop threads pinned to {pinned:?}");
    let want: Vec<(usize, Vec<usize>)> = (0..2)
        .map(|i| (i, vec![allowed[i % allowed.len()]]))
        .collect();
    assert_eq!(pinned, want);
}

/// The CPUs of a `Cpus_allowed_list:` line of /proc/…/status (`0-1,4`).
fn cpus_allowed(status: &str) -> Vec<usize> {
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .expect("Cpus_allowed_list");
    list.trim()
        .split(',')
        .flat_map(|r| {
            let (a, b) = r.split_once('-').unwrap_or((r, r));
            a.parse::<usize>().unwrap()..=b.parse::<usize>().unwrap()
        })
        .collect()
}
