//! What one request gets (`server.rs`): the file it names (`resolve.rs`),
//! what to send of it (`conditional.rs`), the head (`response.rs`); or an
//! error page. One access-log line per request.

use crate::conditional;
use crate::request::{Refusal, Request};
use crate::resolve::{Found, Root};
use crate::response::{self, Meta};
use ioplex::ConnId;
use std::fs::File;

/// A head to send, maybe a part of a file after it, and whether the
/// connection stays open for the next request.
pub struct Reply {
    /// The head, and an error page's body.
    pub head: String,
    /// The file and the bytes `start..end` of it to send.
    pub body: Option<(File, u64, u64)>,
    pub keep_alive: bool,
}

/// The reply to a parsed head (or to why it was refused) on connection `id`.
pub fn reply(root: &Root, id: ConnId, request: Result<Request, Refusal>) -> Reply {
    let head_only = matches!(&request, Ok(r) if r.head_only);
    let mut reply = answer(root, id, request);
    if head_only {
        // No page body after a HEAD (it would be read as the next response);
        // its Content-Length stays, as a GET would have it.
        let end = reply
            .head
            .find("\r\n\r\n")
            .map_or(reply.head.len(), |at| at + 4);
        reply.head.truncate(end);
    }
    reply
}

fn answer(root: &Root, id: ConnId, request: Result<Request, Refusal>) -> Reply {
    let r = match request {
        Ok(r) => r,
        Err(why) => return refused(id, "", why, false),
    };
    let keep_alive = r.keep_alive;
    let method = if r.head_only { "HEAD" } else { "GET" };
    let (file, meta, name) = match root.open(&r.target) {
        Err(why) => return refused(id, &format!("{method} {} ", r.target), why, keep_alive),
        Ok(Found::File(file, meta, name)) => (file, meta, name),
        Ok(Found::Redirect(to)) => {
            log::info!("{id}: {method} {} -> 301 {to}", r.target);
            let head = response::redirect(&to, keep_alive);
            let body = None;
            return Reply {
                head,
                body,
                keep_alive,
            };
        }
    };
    let m = Meta::of(&meta, &name);
    let (head, range) = conditional::respond(&r, &m, keep_alive);
    log::info!("{id}: {method} {} -> {}", r.target, &head[9..12]);
    let body = range.map(|(start, end)| (file, start, end));
    Reply {
        head,
        body,
        keep_alive,
    }
}

/// An error page for `what` (`GET /x `, or empty when the head was not
/// understood); after a 403 or 404 the connection may stay open.
pub fn refused(id: ConnId, what: &str, (status, why): Refusal, keep_alive: bool) -> Reply {
    log::info!("{id}: {what}-> {status} {why}");
    let keep_alive = keep_alive && matches!(status, 403 | 404);
    let head = response::error_page(status, why, keep_alive);
    let body = None;
    Reply {
        head,
        body,
        keep_alive,
    }
}
