//! The commands about the connection itself: PING, ECHO, QUIT, SELECT,
//! and what `redis-cli` and `redis-py` send when they connect (CLIENT
//! SETNAME / SETINFO, HELLO 2 or 3).

use crate::commands::{Call, is, unknown_sub};
use crate::lex::parse_int;
use crate::reply::NOT_INTEGER;

pub fn ping(c: &mut Call<'_, '_, '_>) {
    match c.args.len() {
        1 => c.out.simple("PONG"),
        2 => c.out.bulk(c.args.get(1)),
        _ => c.out.arity_error("ping"),
    }
}

pub fn echo(c: &mut Call<'_, '_, '_>) {
    c.out.bulk(c.args.get(1));
}

pub fn quit(c: &mut Call<'_, '_, '_>) {
    c.client.quit = true;
    c.out.ok();
}

/// One database only: `SELECT 0` (what clients send for db 0) is fine.
pub fn select(c: &mut Call<'_, '_, '_>) {
    match parse_int(c.args.get(1)) {
        None => c.out.error(NOT_INTEGER),
        Some(0) => c.out.ok(),
        Some(_) => c.out.error("ERR DB index is out of range"),
    }
}

/// `CLIENT SETNAME / GETNAME / ID / SETINFO` (redis-py sends SETINFO at connect).
pub fn client(c: &mut Call<'_, '_, '_>) {
    let n = c.args.len();
    if is(c, 1, "setname") && n == 3 {
        set_name(c, 2);
    } else if is(c, 1, "getname") && n == 2 {
        match c.client.name.as_deref() {
            Some(name) => c.out.bulk(name),
            None => c.out.nil(),
        }
    } else if is(c, 1, "id") && n == 2 {
        c.out.int(c.client.id as i64);
    } else if is(c, 1, "setinfo") && n == 4 {
        if is(c, 2, "lib-name") || is(c, 2, "lib-ver") {
            c.out.ok();
        } else {
            let parts: [&[u8]; 3] = [b"ERR Unrecognized option '", c.args.get(2), b"'"];
            c.out.error_parts(&parts);
        }
    } else if ["setname", "getname", "id", "setinfo"]
        .iter()
        .any(|s| is(c, 1, s))
    {
        let sub = c.args.get(1).to_ascii_lowercase();
        c.out
            .arity_error(&format!("client|{}", String::from_utf8_lossy(&sub)));
    } else {
        unknown_sub(c, "CLIENT");
    }
}

const BAD_NAME: &str = "ERR Client names cannot contain spaces, newlines or special characters.";

/// What Redis takes as a client name: printable ASCII without spaces.
fn valid_name(name: &[u8]) -> bool {
    name.iter().all(|b| (b'!'..=b'~').contains(b))
}

/// Names the client (an empty name clears it); `false` after answering
/// the error for a name Redis refuses.
fn name_client(c: &mut Call<'_, '_, '_>, name: &[u8]) -> bool {
    if !valid_name(name) {
        c.out.error(BAD_NAME);
        return false;
    }
    c.client.name = (!name.is_empty()).then(|| name.into());
    true
}

fn set_name(c: &mut Call<'_, '_, '_>, i: usize) {
    if name_client(c, c.args.get(i)) {
        c.out.ok();
    }
}

/// `HELLO [2|3] [SETNAME name]`: the protocol for the replies from here
/// on. redis-py 8 says `HELLO 3` at connect. The reply names Redis 7.0,
/// whose commands (those of them served here) are what clients may expect.
pub fn hello(c: &mut Call<'_, '_, '_>) {
    let mut proto = if c.client.resp3 { 3 } else { 2 };
    if c.args.len() >= 2 {
        match parse_int(c.args.get(1)) {
            None => {
                return c
                    .out
                    .error("ERR Protocol version is not an integer or out of range");
            }
            Some(v @ (2 | 3)) => proto = v,
            Some(_) => return c.out.error("NOPROTO unsupported protocol version"),
        }
    }
    let mut name = None;
    let mut i = 2;
    while i < c.args.len() {
        if !(is(c, i, "setname") && i + 1 < c.args.len()) {
            let parts: [&[u8]; 3] = [b"ERR Syntax error in HELLO option '", c.args.get(i), b"'"];
            return c.out.error_parts(&parts);
        }
        name = Some(c.args.get(i + 1));
        i += 2;
    }
    if name.is_some_and(|name| !name_client(c, name)) {
        return;
    }
    (c.client.resp3, c.out.resp3) = (proto == 3, proto == 3);
    c.out.map(7);
    for (k, v) in [("server", "redis"), ("version", "7.0.0")] {
        c.out.bulk(k.as_bytes());
        c.out.bulk(v.as_bytes());
    }
    c.out.bulk(b"proto");
    c.out.int(proto);
    c.out.bulk(b"id");
    c.out.int(c.client.id as i64);
    for (k, v) in [("mode", "standalone"), ("role", "master")] {
        c.out.bulk(k.as_bytes());
        c.out.bulk(v.as_bytes());
    }
    c.out.bulk(b"modules");
    c.out.array(0);
}
