//! The command table, and the commands about the server (DBSIZE, CONFIG
//! GET, COMMAND): arity is checked once, here, the way Redis words its
//! errors; each command is a plain function of one [`Call`].

use crate::collections::{hget, hset, lpop, lpush, lrange, rpop, rpush};
use crate::connection::{client, echo, hello, ping, quit, select};
use crate::expiry::{expire, pttl, ttl};
use crate::keys::{decr, decrby, del, exists, get, incr, incrby, mget, mset, set};
use crate::parser::Args;
use crate::reply::Out;
use crate::set::{sadd, scard, spop};
use crate::store::Store;

/// One command about to run: its arguments, the keyspace, the replies.
pub struct Call<'a, 'o, 'c> {
    pub args: Args<'a>,
    pub db: &'a mut Store,
    pub out: &'a mut Out<'o, 'c>,
    pub client: &'a mut Client,
}

/// What the server knows of one connection.
#[derive(Default)]
pub struct Client {
    pub id: u64,
    pub name: Option<Box<[u8]>>,
    /// QUIT was asked: close once the replies are out.
    pub quit: bool,
    /// `HELLO 3` was said: RESP3 replies from then on.
    pub resp3: bool,
    /// Reading paused until the replies queued for it are written.
    pub held: bool,
}

type Run = fn(&mut Call<'_, '_, '_>);

/// A command: its name, Redis' arity (N: exactly N words with the name;
/// -N: at least N), its keys as (first, last, step) for COMMAND, and the code.
struct Command(&'static str, i32, (i8, i8, i8), Run);

/// Looked up in order: the commands benchmarks send most come first.
const TABLE: &[Command] = &[
    Command("get", 2, (1, 1, 1), get),
    Command("set", -3, (1, 1, 1), set),
    Command("ping", -1, (0, 0, 0), ping),
    Command("incr", 2, (1, 1, 1), incr),
    Command("lpush", -3, (1, 1, 1), lpush),
    Command("lpop", -2, (1, 1, 1), lpop),
    Command("rpush", -3, (1, 1, 1), rpush),
    Command("rpop", -2, (1, 1, 1), rpop),
    Command("lrange", 4, (1, 1, 1), lrange),
    Command("sadd", -3, (1, 1, 1), sadd),
    Command("spop", -2, (1, 1, 1), spop),
    Command("scard", 2, (1, 1, 1), scard),
    Command("hset", -4, (1, 1, 1), hset),
    Command("hget", 3, (1, 1, 1), hget),
    Command("mset", -3, (1, -1, 2), mset),
    Command("mget", -2, (1, -1, 1), mget),
    Command("del", -2, (1, -1, 1), del),
    Command("exists", -2, (1, -1, 1), exists),
    Command("decr", 2, (1, 1, 1), decr),
    Command("incrby", 3, (1, 1, 1), incrby),
    Command("decrby", 3, (1, 1, 1), decrby),
    Command("expire", -3, (1, 1, 1), expire),
    Command("ttl", 2, (1, 1, 1), ttl),
    Command("pttl", 2, (1, 1, 1), pttl),
    Command("echo", 2, (0, 0, 0), echo),
    Command("dbsize", 1, (0, 0, 0), dbsize),
    Command("select", 2, (0, 0, 0), select),
    Command("quit", -1, (0, 0, 0), quit),
    Command("config", -2, (0, 0, 0), config),
    Command("command", -1, (0, 0, 0), command),
    Command("client", -2, (0, 0, 0), client),
    Command("hello", -1, (0, 0, 0), hello),
];

/// Runs one command, or answers why it cannot run.
pub fn execute(c: &mut Call<'_, '_, '_>) {
    let name = c.args.get(0);
    let found = TABLE
        .iter()
        .find(|k| k.0.len() == name.len() && k.0.as_bytes().eq_ignore_ascii_case(name));
    let Some(&Command(name, arity, _, run)) = found else {
        return unknown(c);
    };
    let n = c.args.len() as i32;
    if (arity > 0 && n != arity) || n < -arity {
        return c.out.arity_error(name);
    }
    run(c)
}

/// `-ERR unknown command 'x', with args beginning with: 'a' 'b' `, as Redis says it.
fn unknown(c: &mut Call<'_, '_, '_>) {
    let name = c.args.get(0);
    let mut text = b"ERR unknown command '".to_vec();
    text.extend_from_slice(&name[..name.len().min(128)]);
    text.extend_from_slice(b"', with args beginning with: ");
    let mut listed = 0;
    for arg in c.args.iter().skip(1) {
        if listed >= 128 {
            break;
        }
        let take = arg.len().min(128 - listed);
        text.push(b'\'');
        text.extend_from_slice(&arg[..take]);
        text.extend_from_slice(b"' ");
        listed += take + 3;
    }
    c.out.error_parts(&[&text]);
}

/// `-ERR unknown subcommand 'x'. Try CONFIG HELP.`
pub fn unknown_sub(c: &mut Call<'_, '_, '_>, command: &str) {
    let sub = c.args.get(1);
    let parts: [&[u8]; 5] = [
        b"ERR unknown subcommand '",
        &sub[..sub.len().min(128)],
        b"'. Try ",
        command.as_bytes(),
        b" HELP.",
    ];
    c.out.error_parts(&parts);
}

/// Is argument `i` the word `w` (any case)?
pub fn is(c: &Call<'_, '_, '_>, i: usize, w: &str) -> bool {
    c.args.get(i).eq_ignore_ascii_case(w.as_bytes())
}

fn dbsize(c: &mut Call<'_, '_, '_>) {
    c.out.int(c.db.len() as i64);
}

/// What `CONFIG GET` knows: enough for `redis-benchmark`, which asks for
/// `save` and `appendonly` before it starts. Nothing is persisted here.
const SETTINGS: &[(&str, &str)] = &[
    ("save", ""),
    ("appendonly", "no"),
    ("databases", "1"),
    ("maxmemory", "0"),
];

fn config(c: &mut Call<'_, '_, '_>) {
    if !is(c, 1, "get") {
        return unknown_sub(c, "CONFIG");
    }
    if c.args.len() < 3 {
        return c.out.arity_error("config|get");
    }
    let args = &c.args;
    let wanted = |name: &str| {
        args.iter()
            .skip(2)
            .any(|p| p == b"*" || p.eq_ignore_ascii_case(name.as_bytes()))
    };
    let found: Vec<_> = SETTINGS.iter().filter(|(name, _)| wanted(name)).collect();
    c.out.map(found.len());
    for (name, value) in found {
        c.out.bulk(name.as_bytes());
        c.out.bulk(value.as_bytes());
    }
}

/// `COMMAND` lists the table; `COMMAND COUNT`; `COMMAND DOCS` (what
/// `redis-cli` asks at start for its hints) is an empty list: no docs here.
fn command(c: &mut Call<'_, '_, '_>) {
    if c.args.len() == 1 {
        c.out.array(TABLE.len());
        for &Command(name, arity, (first, last, step), _) in TABLE {
            c.out.array(6);
            c.out.bulk(name.as_bytes());
            c.out.int(arity.into());
            c.out.array(0);
            c.out.int(first.into());
            c.out.int(last.into());
            c.out.int(step.into());
        }
    } else if is(c, 1, "count") {
        c.out.int(TABLE.len() as i64);
    } else if is(c, 1, "docs") {
        c.out.map(0);
    } else {
        unknown_sub(c, "COMMAND");
    }
}
