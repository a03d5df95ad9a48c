//! The RESP server (examples/resp) driven by the real clients: `redis-cli`
//! and `redis-benchmark` (Debian `redis-tools`), the Python `redis`
//! package, and raw sockets for pipelining and for bad input. `.ci/run`
//! installs the tools; a test that cannot find one fails, naming it.

mod common;

use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The server on 127.0.0.1:0, logging warnings only (a passing test stays quiet).
fn server() -> ExampleServer {
    server_with(&[])
}

/// [`server`] with more flags.
fn server_with(flags: &[&str]) -> ExampleServer {
    let mut cmd = Command::new(example_path("resp"));
    cmd.args(["--addr", "127.0.0.1:0"])
        .args(flags)
        .env("RUST_LOG", "warn");
    ExampleServer::start_command("resp", cmd)
}

/// Runs a tool from `redis-tools`, bounded; fails loudly when it is missing.
fn tool(name: &str, args: &[String], stdin: &[u8]) -> String {
    let found = Command::new(name)
        .arg("--version")
        .stdout(Stdio::null())
        .status();
    assert!(
        found.is_ok_and(|s| s.success()),
        "{name} is required (Debian redis-tools; .ci/run installs it) and was not found"
    );
    let mut cmd = Command::new(name);
    cmd.args(args).stderr(Stdio::piped());
    let out = run_bounded(cmd, stdin, Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{name} {args:?} failed: {stderr}");
    String::from_utf8_lossy(&out.stdout).trim_end().to_string()
}

/// `redis-cli --no-raw` (replies typed: `(integer) 1`, `(nil)`, `(error) ...`)
/// with one command, its words split on spaces.
fn cli(s: &ExampleServer, command: &str) -> String {
    let mut args = vec![
        "-h".into(),
        "127.0.0.1".into(),
        "-p".into(),
        s.addr.port().to_string(),
    ];
    args.push("--no-raw".into());
    args.extend(command.split(' ').map(String::from));
    tool("redis-cli", &args, b"")
}

/// Asserts each `(command, reply)` pair through `redis-cli`, in order.
fn expect(s: &ExampleServer, pairs: &[(&str, &str)]) {
    for (command, want) in pairs {
        assert_eq!(cli(s, command), *want, "reply to {command}");
    }
}

/// A multi-bulk command, as clients encode it.
fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut v = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        v.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        v.extend_from_slice(a);
        v.extend_from_slice(b"\r\n");
    }
    v
}

/// Reads one whole reply (nested arrays, RESP3 maps and sets included) as its raw bytes.
fn read_reply(r: &mut BufReader<TcpStream>) -> Vec<u8> {
    let mut line = Vec::new();
    r.read_until(b'\n', &mut line).expect("a reply line");
    let n: i64 = std::str::from_utf8(&line[1..line.len() - 2])
        .unwrap_or("")
        .parse()
        .unwrap_or(-1);
    match line[0] {
        b'$' if n >= 0 => {
            let mut body = vec![0; n as usize + 2];
            r.read_exact(&mut body).expect("a bulk body");
            line.extend(body);
        }
        b'*' | b'~' => (0..n.max(0)).for_each(|_| line.extend(read_reply(r))),
        b'%' => (0..2 * n.max(0)).for_each(|_| line.extend(read_reply(r))),
        _ => {}
    }
    line
}

/// Reads one reply per `want`, each compared as text (a mismatch reads well).
fn assert_replies(r: &mut BufReader<TcpStream>, want: &[&[u8]]) {
    for w in want {
        let got = read_reply(r);
        assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(w));
    }
}

#[test]
fn strings_and_counters_answer_as_redis_does() {
    let s = server();
    expect(
        &s,
        &[
            ("PING", "PONG"),
            ("ping hello", "\"hello\""),
            ("ECHO hi", "\"hi\""),
            ("GET nope", "(nil)"),
            ("SET k v1", "OK"),
            ("GET k", "\"v1\""),
            ("SET k v2 NX", "(nil)"),
            ("SET k v3 XX", "OK"),
            ("SET other v XX", "(nil)"),
            ("SET fresh v NX", "OK"),
            ("GET k", "\"v3\""),
            ("SET k v NX XX", "(error) ERR syntax error"),
            ("SET k v EX", "(error) ERR syntax error"),
            (
                "SET k v EX ten",
                "(error) ERR value is not an integer or out of range",
            ),
            (
                "SET k v EX 0",
                "(error) ERR invalid expire time in 'set' command",
            ),
            ("EXISTS k fresh nope k", "(integer) 3"),
            ("DEL k nope fresh", "(integer) 2"),
            ("EXISTS k", "(integer) 0"),
            ("INCR n", "(integer) 1"),
            ("INCRBY n 41", "(integer) 42"),
            ("DECR n", "(integer) 41"),
            ("DECRBY n 50", "(integer) -9"),
            ("GET n", "\"-9\""),
            ("SET big 9223372036854775807", "OK"),
            (
                "INCR big",
                "(error) ERR increment or decrement would overflow",
            ),
            ("SET word abc", "OK"),
            (
                "INCR word",
                "(error) ERR value is not an integer or out of range",
            ),
            (
                "INCRBY n x",
                "(error) ERR value is not an integer or out of range",
            ),
            ("MSET a 1 b 2", "OK"),
            ("MGET a nope b", "1) \"1\"\n2) (nil)\n3) \"2\""),
            (
                "MSET a 1 b",
                "(error) ERR wrong number of arguments for 'mset' command",
            ),
            (
                "GET",
                "(error) ERR wrong number of arguments for 'get' command",
            ),
            (
                "get a b",
                "(error) ERR wrong number of arguments for 'get' command",
            ),
            ("DBSIZE", "(integer) 5"),
        ],
    );
}

#[test]
fn lists_sets_and_hashes_answer_as_redis_does() {
    let s = server();
    expect(
        &s,
        &[
            ("RPUSH l a b c", "(integer) 3"),
            ("LPUSH l z", "(integer) 4"),
            ("LRANGE l 0 -1", "1) \"z\"\n2) \"a\"\n3) \"b\"\n4) \"c\""),
            ("LRANGE l 1 2", "1) \"a\"\n2) \"b\""),
            ("LRANGE l -2 100", "1) \"b\"\n2) \"c\""),
            ("LRANGE l 3 1", "(empty array)"),
            ("LRANGE nope 0 -1", "(empty array)"),
            ("LPOP l", "\"z\""),
            ("RPOP l", "\"c\""),
            ("LPOP l 5", "1) \"a\"\n2) \"b\""),
            ("EXISTS l", "(integer) 0"),
            ("LPOP l", "(nil)"),
            ("LPOP l 2", "(nil)"),
            (
                "LPOP l -1",
                "(error) ERR value is out of range, must be positive",
            ),
            ("SADD s a b c a", "(integer) 3"),
            ("SADD s c d", "(integer) 1"),
            ("SCARD s", "(integer) 4"),
            ("SCARD nope", "(integer) 0"),
            ("HSET h f1 v1 f2 v2", "(integer) 2"),
            ("HSET h f1 new", "(integer) 0"),
            ("HGET h f1", "\"new\""),
            ("HGET h nope", "(nil)"),
            (
                "HSET h f1",
                "(error) ERR wrong number of arguments for 'hset' command",
            ),
            ("SET str x", "OK"),
            (
                "LPUSH str a",
                "(error) WRONGTYPE Operation against a key holding the wrong kind of value",
            ),
            (
                "GET h",
                "(error) WRONGTYPE Operation against a key holding the wrong kind of value",
            ),
            (
                "SADD h a",
                "(error) WRONGTYPE Operation against a key holding the wrong kind of value",
            ),
            (
                "HGET s a",
                "(error) WRONGTYPE Operation against a key holding the wrong kind of value",
            ),
        ],
    );
    // SPOP takes each member once, at random, and the set goes when empty.
    let mut popped: Vec<String> = (0..3).map(|_| cli(&s, "SPOP s")).collect();
    popped.extend(cli(&s, "SPOP s 10").lines().map(|l| l[3..].to_string()));
    popped.sort();
    assert_eq!(popped, ["\"a\"", "\"b\"", "\"c\"", "\"d\""]);
    expect(
        &s,
        &[
            ("EXISTS s", "(integer) 0"),
            ("SPOP s", "(nil)"),
            ("SPOP s 1", "(empty array)"),
        ],
    );
}

#[test]
fn ttl_is_exact_to_the_second_and_keys_leave_on_the_loops_timer() {
    let s = server();
    expect(
        &s,
        &[
            ("SET k v", "OK"),
            ("TTL k", "(integer) -1"),
            ("TTL nope", "(integer) -2"),
            ("EXPIRE nope 10", "(integer) 0"),
            ("EXPIRE k 100", "(integer) 1"),
            ("TTL k", "(integer) 100"),
            ("EXPIRE k 50 GT", "(integer) 0"),
            ("EXPIRE k 50 LT", "(integer) 1"),
            ("EXPIRE k 60 NX", "(integer) 0"),
            ("TTL k", "(integer) 50"),
            (
                "EXPIRE k 10 NX XX",
                "(error) ERR NX and XX, GT or LT options at the same time are not compatible",
            ),
            ("SET k v2 KEEPTTL", "OK"),
            ("TTL k", "(integer) 50"),
            ("SET k v3", "OK"),
            ("TTL k", "(integer) -1"),
            ("SET gone v", "OK"),
            ("EXPIRE gone -1", "(integer) 1"),
            ("EXISTS gone", "(integer) 0"),
            ("SET two v EX 2", "OK"),
            ("SET brief v PX 150", "OK"),
            ("DBSIZE", "(integer) 3"),
        ],
    );
    let pttl: i64 = cli(&s, "PTTL two")
        .trim_start_matches("(integer) ")
        .parse()
        .unwrap();
    assert!(
        (1_000..=2_000).contains(&pttl),
        "PTTL right after SET EX 2: {pttl}"
    );
    std::thread::sleep(Duration::from_millis(1_100));
    // 0.9 s left rounds to 1, as Redis rounds. "brief" left without
    // anyone touching it: DBSIZE counts what the timer has not removed.
    expect(
        &s,
        &[
            ("TTL two", "(integer) 1"),
            ("DBSIZE", "(integer) 2"),
            ("GET brief", "(nil)"),
        ],
    );
    std::thread::sleep(Duration::from_millis(1_000));
    expect(
        &s,
        &[
            ("DBSIZE", "(integer) 1"),
            ("GET two", "(nil)"),
            ("TTL two", "(integer) -2"),
        ],
    );
}

/// Deadlines at the edge of i64 milliseconds: refused, or kept and
/// counted down, never an overflow (the tests run a debug build: it would panic).
#[test]
fn deadlines_near_the_end_of_time_neither_overflow_nor_panic() {
    let s = server();
    for ms in [
        "9223372036854775000",
        "9223372036854775300",
        "9223372036854775807",
    ] {
        let set = cli(&s, &format!("SET k v PX {ms}"));
        assert!(
            set == "OK" || set == "(error) ERR invalid expire time in 'set' command",
            "{set}"
        );
        for command in ["TTL k", "PTTL k", "EXPIRE k 9223372036854775 GT", "TTL k"] {
            assert!(
                cli(&s, command).starts_with("(integer) "),
                "{command} after PX {ms}"
            );
        }
    }
    assert_eq!(cli(&s, "PING"), "PONG");
}

#[test]
fn connect_time_commands_of_redis_cli_and_redis_py_are_answered() {
    let s = server();
    expect(
        &s,
        &[
            ("COMMAND DOCS", "(empty array)"),
            ("CLIENT SETNAME worker-1", "OK"),
            ("CLIENT SETINFO LIB-NAME redis-py", "OK"),
            (
                "CLIENT SETNAME bad\nname",
                "(error) ERR Client names cannot contain spaces, newlines or special characters.",
            ),
            ("CLIENT GETNAME", "(nil)"), // a new connection per redis-cli run
            (
                "CLIENT KILL x",
                "(error) ERR unknown subcommand 'KILL'. Try CLIENT HELP.",
            ),
            ("HELLO 4", "(error) NOPROTO unsupported protocol version"),
            ("SELECT 0", "OK"),
            ("SELECT 1", "(error) ERR DB index is out of range"),
            ("CONFIG GET save", "1) \"save\"\n2) \"\""),
            ("CONFIG GET appendonly", "1) \"appendonly\"\n2) \"no\""),
            ("CONFIG GET nothing", "(empty array)"),
            (
                "CONFIG SET save x",
                "(error) ERR unknown subcommand 'SET'. Try CONFIG HELP.",
            ),
        ],
    );
    let hello = cli(&s, "HELLO 2 SETNAME me");
    assert!(hello.contains("\"proto\"\n 6) (integer) 2"), "{hello}");
    let count: usize = cli(&s, "COMMAND COUNT")
        .trim_start_matches("(integer) ")
        .parse()
        .unwrap();
    assert!(count >= 30, "COMMAND COUNT: {count}");
    assert_eq!(cli(&s, "COMMAND").matches("\"lpush\"").count(), 1);
}

/// After `HELLO 3` (what redis-py 8 sends at connect) nil, maps and sets
/// take their RESP3 forms; everything else is the same in both.
#[test]
fn hello_3_switches_that_connection_to_resp3_replies() {
    let s = server();
    let mut c = connect(s.addr);
    let mut input = encode(&[b"HELLO", b"3"]);
    for command in [
        "GET nope",
        "SADD s a",
        "SPOP s 5",
        "CONFIG GET save",
        "HELLO 2",
        "GET nope",
    ] {
        input.extend(format!("{command}\r\n").into_bytes());
    }
    c.write_all(&input).unwrap();
    let mut r = BufReader::new(c);
    let hello = read_reply(&mut r);
    assert!(
        hello.starts_with(b"%7\r\n$6\r\nserver\r\n"),
        "{}",
        String::from_utf8_lossy(&hello)
    );
    assert!(hello.windows(15).any(|w| w == b"$5\r\nproto\r\n:3\r\n"));
    let want: [&[u8]; 4] = [
        b"_\r\n",
        b":1\r\n",
        b"~1\r\n$1\r\na\r\n",
        b"%1\r\n$4\r\nsave\r\n$0\r\n\r\n",
    ];
    assert_replies(&mut r, &want);
    assert!(
        read_reply(&mut r).starts_with(b"*14\r\n"),
        "HELLO 2 answers in RESP2"
    );
    assert_eq!(read_reply(&mut r), b"$-1\r\n");
}

#[test]
fn unknown_command_is_an_error_and_the_connection_stays() {
    let s = server();
    let mut c = connect(s.addr);
    c.write_all(b"FOO a b\r\n*2\r\n$7\r\nNOTACMD\r\n$3\r\nx\ny\r\nPING\r\n")
        .unwrap();
    let mut r = BufReader::new(c);
    let want: [&[u8]; 3] = [
        b"-ERR unknown command 'FOO', with args beginning with: 'a' 'b' \r\n",
        b"-ERR unknown command 'NOTACMD', with args beginning with: 'x y' \r\n",
        b"+PONG\r\n",
    ];
    assert_replies(&mut r, &want);
}

#[test]
fn pipelined_commands_in_one_write_are_answered_in_order() {
    let s = server();
    let mut c = connect(s.addr);
    let (mut input, mut want) = (Vec::new(), Vec::new());
    for i in 0..2_000 {
        let (key, value) = (format!("key:{i}"), format!("value-{i}"));
        input.extend(encode(&[b"SET", key.as_bytes(), value.as_bytes()]));
        input.extend(encode(&[b"INCR", b"counter"]));
        input.extend(format!("GET {key}\r\n").into_bytes()); // inline, between multi-bulk
        want.extend(format!("+OK\r\n:{}\r\n${}\r\n{value}\r\n", i + 1, value.len()).into_bytes());
    }
    c.write_all(&input).unwrap();
    let mut got = vec![0; want.len()];
    c.read_exact(&mut got).unwrap();
    assert!(
        got == want,
        "replies differ from the first mismatch at byte {}",
        got.iter().zip(&want).take_while(|(a, b)| a == b).count()
    );
}

#[test]
fn redis_cli_pipe_mode_loads_every_command() {
    let s = server();
    let mut input = Vec::new();
    for i in 0..10_000 {
        input.extend(encode(&[b"SET", format!("k{i}").as_bytes(), b"v"]));
    }
    let args: Vec<String> = [
        "-h",
        "127.0.0.1",
        "-p",
        &s.addr.port().to_string(),
        "--pipe",
    ]
    .map(String::from)
    .into();
    let out = tool("redis-cli", &args, &input);
    assert!(out.contains("errors: 0, replies: 10000"), "{out}");
    assert_eq!(cli(&s, "DBSIZE"), "(integer) 10000");
}

#[test]
fn a_big_bulk_sent_in_pieces_is_stored_and_read_back_whole() {
    let s = server();
    let value: Vec<u8> = (0..4 << 20).map(|i: u32| (i % 251) as u8).collect();
    let mut c = connect(s.addr);
    let command = encode(&[b"SET", b"big", &value]);
    for piece in command.chunks(64 << 10) {
        c.write_all(piece).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    c.write_all(&encode(&[b"GET", b"big"])).unwrap();
    let mut r = BufReader::new(c);
    assert_eq!(read_reply(&mut r), b"+OK\r\n");
    let got = read_reply(&mut r);
    assert_eq!(&got[..10], b"$4194304\r\n");
    assert!(
        got[10..got.len() - 2] == value[..],
        "GET gave other bytes back"
    );
}

/// 20,000 commands of random words and edge-case numbers, keys of every
/// kind colliding: each gets one well-formed reply and the server lives on
/// (the test binary's server is a debug build: an overflow would panic).
#[test]
fn random_commands_each_get_one_reply_and_never_bring_the_server_down() {
    const NAMES: &[&str] = &[
        "get", "set", "ping", "incr", "lpush", "lpop", "rpush", "rpop", "lrange", "sadd", "spop",
        "scard", "hset", "hget", "mset", "mget", "del", "exists", "decr", "incrby", "decrby",
        "expire", "ttl", "pttl", "echo", "dbsize", "select", "config", "command", "client",
        "hello", "nosuch",
    ];
    const KEYS: &[&str] = &["k", "l", "s", "h", "n"];
    const NUMBERS: &[&str] = &[
        "0",
        "1",
        "-1",
        "2",
        "100",
        "9223372036854775807",
        "-9223372036854775808",
        "9223372036854775",
        "-9223372036854775",
        "01",
        "",
    ];
    const WORDS: &[&str] = &[
        "abc", "nx", "xx", "gt", "lt", "ex", "px", "keepttl", "get", "docs", "count", "setname",
        "getname", "setinfo", "lib-name", "3", "2", "save", "*",
    ];
    let s = server();
    let mut rng = fastrand::Rng::with_seed(16);
    let mut input = Vec::new();
    for _ in 0..20_000 {
        // A name, then mostly a key, then numbers and words.
        let mut args: Vec<&[u8]> = vec![NAMES[rng.usize(..NAMES.len())].as_bytes()];
        for j in 0..rng.usize(0..6) {
            let kind = match (j, rng.u8(..5)) {
                (0, 0) => NUMBERS,
                (0, _) => KEYS,
                (_, 0..2) => NUMBERS,
                _ => WORDS,
            };
            args.push(kind[rng.usize(..kind.len())].as_bytes());
        }
        input.extend(encode(&args));
    }
    input.extend(encode(&[b"PING", b"alive"]));
    let mut c = connect(s.addr);
    let writer = {
        let mut c = c.try_clone().unwrap();
        std::thread::spawn(move || c.write_all(&input))
    };
    let mut r = BufReader::new(c.try_clone().unwrap());
    for i in 0..20_000 {
        let reply = read_reply(&mut r);
        assert!(
            b"+-:$*%~_".contains(&reply[0]),
            "reply {i}: {:?}",
            String::from_utf8_lossy(&reply)
        );
    }
    assert_eq!(read_reply(&mut r), b"$5\r\nalive\r\n");
    writer.join().unwrap().unwrap();
    c.write_all(b"PING\r\n").unwrap();
}

/// Resident memory of process `pid`, in bytes.
fn rss_of(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .expect("VmRSS");
    kb.trim()
        .trim_end_matches(" kB")
        .trim()
        .parse::<usize>()
        .unwrap()
        * 1024
}

/// 400 pipelined GETs of a 256 KiB value (100 MiB of replies) from a client
/// that reads nothing yet: past 1 MiB queued the server stops reading that
/// client's commands instead of queueing all of it, then answers every one.
#[test]
fn a_client_that_does_not_read_holds_back_its_pipeline_not_the_servers_memory() {
    let s = server();
    let value = vec![b'x'; 256 << 10];
    let mut c = connect(s.addr);
    c.write_all(&encode(&[b"SET", b"v", &value])).unwrap();
    assert_eq!(read_n(&mut c, 5), b"+OK\r\n");
    c.write_all(&encode(&[b"GET", b"v"]).repeat(400)).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let rss = rss_of(s.child.id());
    assert!(
        rss < 48 << 20,
        "server RSS {} MiB with 100 MiB of replies unread",
        rss >> 20
    );
    let mut r = BufReader::new(c);
    for i in 0..400 {
        let reply = read_reply(&mut r);
        assert!(
            reply.len() == value.len() + 11 && reply.ends_with(b"x\r\n"),
            "reply {i}"
        );
    }
    println!(
        "server RSS while 100 MiB of replies waited: {} MiB",
        rss >> 20
    );
}

/// Each bad input gets Redis' error line and a close; a client beside it,
/// with a command half sent, is served on as if nothing happened.
#[test]
fn protocol_errors_close_only_that_connection() {
    let s = server();
    let mut bystander = connect(s.addr);
    bystander
        .write_all(b"*2\r\n$4\r\nECHO\r\n$5\r\nhel")
        .unwrap();
    let big_inline = "x".repeat(70_000);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"*1\r\n$536870913\r\n".to_vec(), "invalid bulk length"),
        (b"*1\r\n$-3\r\n".to_vec(), "invalid bulk length"),
        (b"*-5\r\n".to_vec(), "invalid multibulk length"),
        (b"*99999999\r\n".to_vec(), "invalid multibulk length"),
        (b"*12abc\r\n".to_vec(), "invalid multibulk length"),
        (big_inline.clone().into_bytes(), "too big inline request"),
        (
            format!("*{big_inline}").into_bytes(),
            "too big mbulk count string",
        ),
        (
            format!("*1\r\n${big_inline}").into_bytes(),
            "too big bulk count string",
        ),
        (b"*1\r\n+PING\r\n".to_vec(), "expected '$', got '+'"),
        (
            b"*1\r\n$4\r\nPINGxx".to_vec(),
            "expected '\\r\\n' after a bulk argument",
        ),
        (b"SET k \"a b\r\n".to_vec(), "unbalanced quotes in request"),
    ];
    for (bad, why) in cases {
        let mut c = connect(s.addr);
        c.write_all(b"PING\r\n").unwrap();
        c.write_all(&bad).unwrap();
        let got = read_to_eof(&mut c);
        let want = format!("+PONG\r\n-ERR Protocol error: {why}\r\n");
        assert_eq!(
            String::from_utf8_lossy(&got),
            want,
            "after {:?}",
            String::from_utf8_lossy(&bad[..bad.len().min(20)])
        );
    }
    bystander.write_all(b"lo\r\nPING\r\n").unwrap();
    assert_eq!(read_n(&mut bystander, 18), b"$5\r\nhello\r\n+PONG\r\n");
}

/// `--max-bulk` (Redis' proto-max-bulk-len) is enforced from the `$N`
/// header, before any of the N bytes are sent; a usage error names the
/// flags when the query limit could not hold such a bulk.
#[test]
fn max_bulk_is_refused_from_the_header_and_checked_against_max_query() {
    let s = server_with(&["--max-bulk", "1000", "--max-query", "100000"]);
    let mut c = connect(s.addr);
    c.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1000\r\n")
        .unwrap();
    c.write_all(&[b'v'; 1000]).unwrap();
    c.write_all(b"\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1001\r\n")
        .unwrap();
    let got = String::from_utf8(read_to_eof(&mut c)).unwrap();
    assert_eq!(got, "+OK\r\n-ERR Protocol error: invalid bulk length\r\n");

    let mut cmd = Command::new(example_path("resp"));
    cmd.args(["--max-bulk", "100000", "--max-query", "100000"])
        .stderr(Stdio::piped());
    let out = run_bounded(cmd, b"", Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--max-query must be larger than --max-bulk"),
        "{stderr}"
    );
}

#[test]
fn redis_py_client_works_against_it() {
    let script = r#"
import sys, redis
# The default protocol (RESP3 since redis-py 8: HELLO 3 at connect), then RESP2.
port, protocol = int(sys.argv[1]), {"default": None, "2": 2}[sys.argv[2]]
r = redis.Redis(host="127.0.0.1", port=port, protocol=protocol, client_name="py-test", socket_timeout=10)
assert r.ping()
assert r.client_getname() == "py-test"
assert r.set("k", "v") and r.get("k") == b"v"
assert r.set("k", "w", nx=True) is None
assert r.incr("n") == 1 and r.incrby("n", 9) == 10 and r.decr("n") == 9
assert r.mset({"a": "1", "b": "2"}) and r.mget("a", "x", "b") == [b"1", None, b"2"]
assert r.rpush("l", "a", "b", "c") == 3 and r.lrange("l", 0, -1) == [b"a", b"b", b"c"]
assert r.lpop("l") == b"a" and r.rpop("l", 2) == [b"c", b"b"]
assert r.sadd("s", "x", "y") == 2 and r.scard("s") == 2 and r.spop("s") in (b"x", b"y")
assert r.get("nope") is None and r.lpop("nope", 2) is None and r.hget("h", "nope") is None
assert r.config_get("appendonly") == {"appendonly": "no"}, r.config_get("appendonly")
assert r.hset("h", mapping={"f": "1", "g": "2"}) == 2 and r.hget("h", "g") == b"2"
assert r.expire("k", 100) and r.ttl("k") == 100
assert r.delete("k", "a", "zz") == 2 and r.exists("k") == 0
p = r.pipeline(transaction=False)
for i in range(500):
    p.set(f"p{i}", i)
    p.get(f"p{i}")
res = p.execute()
assert res == [x for i in range(500) for x in (True, str(i).encode())], res[:6]
try:
    r.lpush("h", "x")
    raise SystemExit("no WRONGTYPE")
except redis.ResponseError as e:
    assert str(e).startswith("WRONGTYPE"), e
try:
    r.execute_command("NOSUCH", "a")
    raise SystemExit("no error for an unknown command")
except redis.ResponseError as e:
    assert "unknown command 'NOSUCH'" in str(e), e
assert r.ping()
print("ok")
"#;
    let probe = "import importlib.util; print(importlib.util.find_spec('redis') is not None)";
    let found = python(probe, &[], Duration::from_secs(30));
    assert_eq!(
        found.trim(),
        "True",
        "the Python redis package is required (pip; .ci/run installs it)"
    );
    for protocol in ["default", "2"] {
        let s = server();
        let port = s.addr.port().to_string();
        let out = python(script, &[&port, protocol], Duration::from_secs(60));
        assert_eq!(out.trim(), "ok", "protocol {protocol}");
    }
}

#[test]
fn redis_benchmark_runs_every_test_of_the_comparison() {
    let s = server();
    let args = [
        "-h",
        "127.0.0.1",
        "-p",
        &s.addr.port().to_string(),
        "-t",
        "ping,set,get,incr,lpush,lpop",
    ];
    let mut args: Vec<String> = args.map(String::from).into();
    args.extend(["-n", "2000", "-c", "10", "-P", "4", "--csv"].map(String::from));
    let csv = tool("redis-benchmark", &args, b"");
    let rows: Vec<(String, f64)> = csv
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').map(|f| f.trim_matches('"')).collect();
            (f[0].to_string(), f[1].parse().unwrap_or(0.0))
        })
        .collect();
    let names: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "PING_INLINE",
            "PING_MBULK",
            "SET",
            "GET",
            "INCR",
            "LPUSH",
            "LPOP"
        ],
        "{csv}"
    );
    assert!(rows.iter().all(|r| r.1 > 0.0), "{csv}");
    assert_eq!(cli(&s, "GET counter:__rand_int__"), "\"2000\"");
}

/// `--threads 2`: two loops, one keyspace. Two clients held at once land
/// on different loops (least-loaded); what one writes the other reads,
/// their ids differ, a deadline set from loop 1 is swept by loop 0's
/// timer, and redis-benchmark's INCRs from 10 clients over both loops add
/// up to exactly 2,000.
#[test]
fn with_two_threads_every_loop_serves_one_keyspace() {
    let s = server_with(&["--threads", "2"]);
    let (mut a, mut b) = (
        BufReader::new(connect(s.addr)),
        BufReader::new(connect(s.addr)),
    );
    let say = |c: &mut BufReader<TcpStream>, args: &[&[u8]], want: &[u8]| {
        c.get_mut().write_all(&encode(args)).unwrap();
        assert_replies(c, &[want]);
    };
    say(&mut a, &[b"SET", b"k", b"from a"], b"+OK\r\n");
    say(&mut b, &[b"GET", b"k"], b"$6\r\nfrom a\r\n");
    say(&mut b, &[b"INCR", b"n"], b":1\r\n");
    say(&mut a, &[b"INCR", b"n"], b":2\r\n");
    say(&mut b, &[b"SET", b"brief", b"v", b"PX", b"100"], b"+OK\r\n");
    say(&mut a, &[b"DBSIZE"], b":3\r\n");
    let id = |c: &mut BufReader<TcpStream>| {
        c.get_mut().write_all(&encode(&[b"CLIENT", b"ID"])).unwrap();
        read_reply(c)
    };
    assert_ne!(id(&mut a), id(&mut b));
    // Nobody touches "brief": only the sweep removes it.
    assert!(
        wait_for(Duration::from_secs(3), || {
            a.get_mut().write_all(&encode(&[b"DBSIZE"])).unwrap();
            read_reply(&mut a) == b":2\r\n"
        }),
        "the expired key was never swept"
    );
    let port = s.addr.port().to_string();
    let args = [
        "-p", &port, "-t", "incr", "-n", "2000", "-c", "10", "-P", "4",
    ];
    tool("redis-benchmark", &args.map(String::from), b"");
    assert_eq!(cli(&s, "GET counter:__rand_int__"), "\"2000\"");
}
