//! `Snapshot::to_prometheus` read back by the format's reference parser
//! (Python's `prometheus_client`), and echo_select's `--metrics` listener
//! scraped over HTTP by curl and by that parser.

mod common;

use common::*;
use ioplex::Config;
use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(20);

/// Parses the text with `prometheus_client` and prints, per family:
/// type, family name, sample name, value, help.
const PARSE: &str = r#"
import sys
try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    sys.exit("FATAL: python3 -m pip install prometheus_client (.ci/run does)")
if sys.argv[1].startswith('http'):
    import urllib.request
    with urllib.request.urlopen(sys.argv[1], timeout=10) as r:
        assert r.status == 200, r.status
        assert r.headers['Content-Type'].startswith('text/plain; version=0.0.4'), r.headers
        text = r.read().decode()
else:
    text = sys.argv[1]
for f in text_string_to_metric_families(text):
    for s in f.samples:
        print('\t'.join([f.type, f.name, s.name, str(int(s.value)), f.documentation]))
"#;

/// Every counter of a snapshot by name, read from its `Debug` form (a
/// source independent of the renderer under test).
fn counters(s: &ioplex::Snapshot) -> BTreeMap<String, u64> {
    let text = format!("{s:?}");
    let inner = text.trim_start_matches("Snapshot {").trim_end_matches('}');
    inner
        .split(',')
        .filter_map(|kv| kv.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().parse().unwrap()))
        .collect()
}

/// Checks the parsed families against the snapshot: one counter family
/// per field, named `{prefix}_{field}` (sample `…_total`), same value, with help.
fn check(parsed: &str, prefix: &str, want: &BTreeMap<String, u64>, min_ok: impl Fn(&str, u64)) {
    let mut seen = BTreeMap::new();
    for line in parsed.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(f.len(), 5, "{line}");
        assert_eq!(f[0], "counter", "{line}");
        let field = f[1].strip_prefix(&format!("{prefix}_")).expect(line);
        assert_eq!(f[2], format!("{}_total", f[1]), "{line}");
        assert!(!f[4].is_empty(), "no help: {line}");
        seen.insert(field.to_owned(), f[3].parse::<u64>().unwrap());
    }
    assert_eq!(
        seen.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (k, v) in &seen {
        min_ok(k, *v);
    }
}

#[test]
fn the_prometheus_text_parses_with_every_counter_its_value_and_its_doc_as_help() {
    let server = Server::start(Echo, Config::default());
    for msg in [&b"one"[..], b"two!", b"three"] {
        let mut c = server.connect();
        c.write_all(msg).unwrap();
        assert_eq!(read_n(&mut c, msg.len()), msg);
    }
    let m = server.metrics.clone();
    assert!(wait_for(LIMIT, || m.snapshot().closed == 3));
    let snap = m.snapshot();
    let want = counters(&snap);
    assert_eq!(want["bytes_in"], 12);
    let text = snap.to_prometheus("ioplex");
    let parsed = python(PARSE, &[&text], LIMIT);
    check(&parsed, "ioplex", &want, |k, v| {
        assert_eq!(v, want[k], "{k}")
    });
    assert!(
        parsed.contains("ioplex_accepted\tioplex_accepted_total\t3\tConnections accepted.\n"),
        "{parsed}"
    );
    server.stop();
}

/// `curl -sS -i URL`: the whole reply, headers and body.
fn curl(url: &str) -> String {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-i", "--max-time", "10", url])
        .stderr(Stdio::piped());
    let out = run_bounded(cmd, b"", LIMIT);
    assert!(
        out.status.success(),
        "curl (needed by this test: .ci/run installs it) failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn echo_select_serves_its_counters_on_the_metrics_listener_to_curl_and_the_parser() {
    let server = ExampleServer::start(
        "echo_select",
        &["--addr", "127.0.0.1:0", "--metrics", "127.0.0.1:0"],
    );
    let line = server
        .stdout_line("metrics on ", IO_TIMEOUT)
        .expect("echo_select printed no `metrics on` line");
    let url = line.trim_start_matches("metrics on ").trim().to_owned();
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with("/metrics"),
        "{url}"
    );
    // Echo traffic, so the counters have something to say.
    let mut c = connect(server.addr);
    assert_eq!(read_n(&mut c, 8), b"hello...");
    c.write_all(b"ping").unwrap();
    assert_eq!(read_n(&mut c, 13), b"response:ping");

    let reply = curl(&url);
    let (head, body) = reply.split_once("\r\n\r\n").expect("headers");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert!(
        !body.contains("hello..."),
        "the echo greeting reached the scraper"
    );
    assert!(
        body.contains("# TYPE ioplex_accepted_total counter\n"),
        "{body}"
    );

    let parsed = python(PARSE, &[&url], LIMIT);
    let want = counters(&ioplex::Snapshot::default());
    check(&parsed, "ioplex", &want, |k, v| match k {
        // The echo client and the two scrapes so far (curl's, this one).
        "accepted" => assert!(v >= 3, "accepted {v}"),
        "bytes_in" => assert!(v >= 4, "bytes_in {v}"),
        _ => {}
    });

    let other = curl(&url.replace("/metrics", "/other"));
    assert!(other.starts_with("HTTP/1.1 404 Not Found\r\n"), "{other}");
    // The echo connection is still served as before.
    c.write_all(b"again").unwrap();
    assert_eq!(read_n(&mut c, 14), b"response:again");
}

/// Starts example `name` with `--metrics 127.0.0.1:0`; returns it and the URL it printed.
fn with_metrics(name: &str, args: &[&str]) -> (ExampleServer, String) {
    let args = [args, &["--addr", "127.0.0.1:0", "--metrics", "127.0.0.1:0"]].concat();
    let server = ExampleServer::start(name, &args);
    let line = server
        .stdout_line("metrics on ", IO_TIMEOUT)
        .unwrap_or_else(|| panic!("{name} printed no `metrics on` line"));
    let url = line.trim_start_matches("metrics on ").trim().to_owned();
    (server, url)
}

/// One sample's value from the Prometheus text (`name_total VALUE`).
fn sample(body: &str, name: &str) -> u64 {
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {body}"))
}

#[test]
fn chat_on_two_loops_serves_the_counters_of_both() {
    let (server, url) = with_metrics("chat", &["--threads", "2"]);
    let (mut a, mut b) = (connect(server.addr), connect(server.addr));
    b.write_all(b"hi\n").unwrap();
    let want = format!("[{}] hi\n", b.local_addr().unwrap());
    let joined = format!("* {} joined\n", b.local_addr().unwrap());
    assert_eq!(
        read_n(&mut a, joined.len() + want.len()),
        (joined + &want).as_bytes()
    );
    let body = curl(&url);
    // a and b (one per loop) and this scrape; both loops' reads summed.
    assert!(sample(&body, "chat_accepted_total") >= 3, "{body}");
    assert!(sample(&body, "chat_bytes_in_total") >= 3, "{body}");
    let parsed = python(PARSE, &[&url], LIMIT);
    check(
        &parsed,
        "chat",
        &counters(&ioplex::Snapshot::default()),
        |_, _| {},
    );
}

#[test]
fn http_static_counts_the_file_bodies_it_sends_with_sendfile() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("big.bin"), vec![7u8; 100 << 10]).unwrap();
    let root = dir.path().to_str().unwrap();
    let (server, url) = with_metrics("http_static", &["--root", root]);
    let page = curl(&format!("http://{}/big.bin", server.addr));
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n") && page.len() > 100 << 10);
    let body = curl(&url);
    assert!(sample(&body, "http_static_sendfiles_total") >= 1, "{body}");
    let scraped = curl(&url.replace("/metrics", "/big.bin"));
    assert!(
        scraped.starts_with("HTTP/1.1 404"),
        "the metrics listener served a file: {scraped}"
    );
}
