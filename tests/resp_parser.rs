//! The RESP server's parser (examples/resp/parser.rs), fed the way the
//! loop feeds it: each call sees the kept tail plus the new bytes, and what
//! the server did not consume is handed back. Commands split anywhere parse
//! as unsplit; encoded commands parse back to themselves; arbitrary bytes
//! give commands or a clean protocol error, never a panic; a big bulk
//! trickling in costs time in proportion to its size.

#[allow(dead_code)]
#[path = "../examples/resp/lex.rs"]
mod lex;
#[allow(dead_code)]
#[path = "../examples/resp/parser.rs"]
mod parser;

use parser::Parser;
use proptest::prelude::*;
use std::time::Instant;

const MAX_BULK: usize = 512 << 20;

/// Commands (owned arguments), then the error that stopped the stream, if any.
type Outcome = (Vec<Vec<Vec<u8>>>, Option<String>);

/// Feeds `chunks` as the server's `on_data` sees them.
fn feed(chunks: &[&[u8]]) -> Outcome {
    let mut p = Parser::new(MAX_BULK);
    let (mut commands, mut pending) = (Vec::new(), Vec::new());
    for chunk in chunks {
        pending.extend_from_slice(chunk);
        let mut used = 0;
        loop {
            let rest = &pending[used..];
            match p.parse(rest) {
                Ok(Some(n)) => {
                    let args = p.args(rest);
                    if args.len() > 0 {
                        commands.push(args.iter().map(<[u8]>::to_vec).collect());
                    }
                    used += n;
                }
                Ok(None) => break,
                Err(e) => return (commands, Some(e.to_string())),
            }
        }
        pending.drain(..used);
    }
    (commands, None)
}

/// Splits `data` at the (sorted, wrapped) cut points.
fn split<'a>(data: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    points.sort();
    let mut out = Vec::new();
    let mut last = 0;
    for p in points {
        out.push(&data[last..p]);
        last = p;
    }
    out.push(&data[last..]);
    out
}

/// A multi-bulk command, as clients encode it.
fn encode(args: &[Vec<u8>]) -> Vec<u8> {
    let mut v = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        v.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        v.extend_from_slice(a);
        v.extend_from_slice(b"\r\n");
    }
    v
}

/// A command: arguments of any bytes (multi-bulk), or of plain words (inline).
fn command() -> impl Strategy<Value = (Vec<Vec<u8>>, bool)> {
    let any = prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 1..6);
    let words = prop::collection::vec("[a-zA-Z0-9:_-]{1,12}".prop_map(String::into_bytes), 1..6);
    prop_oneof![any.prop_map(|a| (a, false)), words.prop_map(|a| (a, true))]
}

/// Byte soup that often looks like RESP: its tokens mixed with noise.
fn soup() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        Just(b"*".to_vec()),
        Just(b"$".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"-".to_vec()),
        Just(b"\"".to_vec()),
        Just(b"'".to_vec()),
        Just(b"\\x4".to_vec()),
        Just(b"*2\r\n$3\r\nGET\r\n".to_vec()),
        Just(b"99999999999999999999".to_vec()),
        (0u32..20).prop_map(|n| n.to_string().into_bytes()),
        prop::collection::vec(any::<u8>(), 0..8),
    ];
    prop::collection::vec(token, 0..40).prop_map(|t| t.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn commands_split_anywhere_parse_back_to_themselves(
        cmds in prop::collection::vec(command(), 1..12),
        cuts in prop::collection::vec(any::<usize>(), 0..10),
        lf_only in any::<bool>(),
    ) {
        let mut stream = Vec::new();
        for (args, inline) in &cmds {
            if *inline {
                stream.extend(args.join(&b' '));
                stream.extend_from_slice(if lf_only { b"\n" } else { b"\r\n" });
            } else {
                stream.extend(encode(args));
            }
        }
        let want: Vec<Vec<Vec<u8>>> = cmds.into_iter().map(|(a, _)| a).collect();
        prop_assert_eq!(feed(&[&stream]), (want.clone(), None));
        prop_assert_eq!(feed(&split(&stream, &cuts)), (want, None));
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_splits_do_not_change_the_outcome(
        data in prop_oneof![soup(), prop::collection::vec(any::<u8>(), 0..200)],
        cuts in prop::collection::vec(any::<usize>(), 0..10),
    ) {
        let whole = feed(&[&data]);
        prop_assert_eq!(feed(&split(&data, &cuts)), whole.clone());
        let bytewise: Vec<&[u8]> = data.chunks(1).collect();
        prop_assert_eq!(feed(&bytewise), whole);
    }

    #[test]
    fn integers_parse_as_redis_string2ll_does(n in any::<i64>()) {
        prop_assert_eq!(lex::parse_int(n.to_string().as_bytes()), Some(n));
    }
}

#[test]
fn non_canonical_integers_are_refused() {
    for bad in [
        "",
        "-",
        "+1",
        "01",
        "-0",
        " 1",
        "1 ",
        "1.0",
        "9223372036854775808",
        "0x10",
    ] {
        assert_eq!(lex::parse_int(bad.as_bytes()), None, "{bad:?}");
    }
    assert_eq!(lex::parse_int(b"-9223372036854775808"), Some(i64::MIN));
}

#[test]
fn inline_commands_take_quotes_and_escapes_as_redis_does() {
    let line = b"SET  k \"a b\\x41\\n\\\"\" 'it\\'s' \"\"\r\n";
    let want: Vec<Vec<u8>> = [&b"SET"[..], b"k", b"a bA\n\"", b"it's", b""]
        .map(<[u8]>::to_vec)
        .into();
    assert_eq!(feed(&[line]), (vec![want], None));
    let closed_early = feed(&[b"SET k \"a\"b\r\n"]);
    assert_eq!(
        closed_early.1.as_deref(),
        Some("unbalanced quotes in request")
    );
    // An empty line and `*0` are nothing, as in Redis; `*-1` too.
    assert_eq!(
        feed(&[b"\r\n*0\r\n*-1\r\nPING\r\n"]),
        (vec![vec![b"PING".to_vec()]], None)
    );
}

#[test]
fn limits_are_refused_from_the_header_before_the_bytes_come() {
    let cases: [(&[u8], &str); 4] = [
        (b"*1\r\n$536870913\r\n", "invalid bulk length"),
        (b"*1048577\r\n", "invalid multibulk length"),
        (b"*-2\r\n", "invalid multibulk length"),
        (b"*1\r\n:1\r\n", "expected '$', got ':'"),
    ];
    for (input, why) in cases {
        assert_eq!(feed(&[input]).1.as_deref(), Some(why));
    }
    let long_line = vec![b'x'; parser::MAX_INLINE + 1];
    assert_eq!(
        feed(&[&long_line]).1.as_deref(),
        Some("too big inline request")
    );
    assert_eq!(
        feed(&[&long_line[..parser::MAX_INLINE]]).1,
        None,
        "64 KiB may still end"
    );
}

/// A 4 MiB bulk fed one byte at a time: each call looks at the length it
/// remembered, never at the bytes again, so this is over in moments (a
/// parser that re-scanned the kept bulk would do ~8e12 byte reads).
/// A 64 KiB inline line trickling in is searched once, not once per byte.
#[test]
fn a_bulk_trickling_in_costs_time_in_proportion_to_its_size() {
    let value = vec![b'v'; 4 << 20];
    let stream = encode(&[b"SET".to_vec(), b"k".to_vec(), value.clone()]);
    let start = Instant::now();
    let bytewise: Vec<&[u8]> = stream.chunks(1).collect();
    let (cmds, err) = feed(&bytewise);
    let bulk = start.elapsed();
    assert_eq!((cmds.len(), err), (1, None));
    assert!(cmds[0][2] == value);

    let mut line = vec![b'x'; parser::MAX_INLINE - 2];
    line.extend_from_slice(b"\r\n");
    let start = Instant::now();
    let (cmds, err) = feed(&line.chunks(1).collect::<Vec<_>>());
    let inline = start.elapsed();
    assert_eq!((cmds.len(), err), (1, None));
    let per_byte = |d: std::time::Duration, n: usize| d.as_nanos() as f64 / n as f64;
    println!(
        "trickled byte by byte: 4 MiB bulk {bulk:?} ({:.0} ns/byte), 64 KiB inline line {inline:?} ({:.0} ns/byte)",
        per_byte(bulk, stream.len()),
        per_byte(inline, line.len())
    );
    assert!(
        bulk.as_secs() < 30 && inline.as_secs() < 10,
        "{bulk:?} {inline:?}"
    );
}
