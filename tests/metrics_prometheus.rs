//! `Snapshot::to_prometheus` read back by the format's reference parser
//! (Python's `prometheus_client`).

mod common;

use common::*;
use ioplex::{Action, Config, Ctx, Handler};
use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
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

struct Echo;

impl Handler for Echo {
    type Conn = ();
    fn on_connect(&mut self, _: &mut Ctx<'_>, _: SocketAddr) {}
    fn on_data(&mut self, ctx: &mut Ctx<'_>, _: &mut (), data: &[u8]) -> Action {
        ctx.send(data);
        Action::Continue
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
