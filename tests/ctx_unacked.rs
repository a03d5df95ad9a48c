//! `Ctx::unacked`: the output the kernel holds for a peer that has not
//! read it, which `Ctx::queued` (the loop's own queue) does not see.

mod common;

use common::*;
use ioplex::{Action, Config, Ctx, Handler, Peer};
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const TOTAL: usize = 4 << 20;

/// On the first byte, sends `TOTAL` bytes; every 10 ms writes
/// `(queued, unacked)` where the test can see it.
struct Blast(Arc<Mutex<(usize, usize)>>);

impl Handler for Blast {
    type Conn = ();
    fn on_connect(&mut self, _: &mut Ctx<'_>, _: Peer) {}
    fn on_data(&mut self, ctx: &mut Ctx<'_>, _: &mut (), _: &[u8]) -> Action {
        ctx.send(&vec![7u8; TOTAL]);
        ctx.set_timer(Duration::from_millis(10), 0);
        Action::Continue
    }
    fn on_timer(&mut self, ctx: &mut Ctx<'_>, _: &mut (), _: u64) -> Action {
        let id = ctx.id();
        *self.0.lock().unwrap() = (ctx.queued(id), ctx.unacked(id));
        ctx.set_timer(Duration::from_millis(10), 0);
        Action::Continue
    }
}

/// Waits until the reported pair stays the same for 100 ms.
fn settled(seen: &Mutex<(usize, usize)>) -> (usize, usize) {
    let mut last = *seen.lock().unwrap();
    let mut same = 0;
    assert!(
        wait_for(Duration::from_secs(10), || {
            std::thread::sleep(Duration::from_millis(20));
            let now = *seen.lock().unwrap();
            same = if now == last { same + 1 } else { 0 };
            last = now;
            same >= 5 && now != (0, 0)
        }),
        "the counts never settled: {last:?}"
    );
    last
}

#[test]
fn unacked_counts_what_the_kernel_holds_for_a_peer_that_does_not_read() {
    let seen = Arc::new(Mutex::new((0, 0)));
    let server = Server::start(Blast(seen.clone()), Config::default());
    let mut c = server.connect();
    c.write_all(b"x").unwrap();
    let (queued, unacked) = settled(&seen);
    assert!(unacked > 0, "the kernel holds unread output: {unacked}");
    // What the client's kernel took (and acknowledged) is the rest.
    let in_client = TOTAL - queued - unacked;
    eprintln!("queued {queued}, unacked {unacked}, in the client's buffer {in_client}");
    let mut buf = vec![0u8; 1 << 20];
    c.read_exact(&mut buf).unwrap();
    let shrank = wait_for(Duration::from_secs(5), || {
        let (q, u) = *seen.lock().unwrap();
        q + u + buf.len() <= queued + unacked
    });
    assert!(
        shrank,
        "reading 1 MiB did not show: {:?}",
        seen.lock().unwrap()
    );
    let mut rest = vec![0u8; TOTAL - buf.len()];
    c.read_exact(&mut rest).unwrap();
    assert!(
        wait_for(Duration::from_secs(5), || *seen.lock().unwrap() == (0, 0)),
        "all read, yet {:?} left",
        seen.lock().unwrap()
    );
}
