//! The loop's internals on real sockets: what only the inside can check.

use super::state::Kind;
use super::*;
use crate::action::{Action, CloseReason};
use crate::backend::Ready;
use crate::ctx::Ctx;
use crate::peer::Peer;
use crate::token::ConnId;
use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

/// Counts what reaches it.
#[derive(Default)]
struct Count {
    bytes: usize,
}

impl Handler for Count {
    type Conn = ();
    fn on_connect(&mut self, _: &mut Ctx<'_>, _: Peer) {}
    fn on_data(&mut self, _: &mut Ctx<'_>, _: &mut (), data: &[u8]) -> Action {
        self.bytes += data.len();
        Action::Continue
    }
}

#[test]
fn an_event_for_a_closed_and_reused_slot_never_reaches_the_new_owner() {
    let mut reactor = Reactor::new(Config::default()).unwrap();
    let addr = reactor.listen("127.0.0.1:0").unwrap();
    let mut handler = Count::default();
    let mut lp = Loop {
        core: &mut reactor.core,
        handler: &mut handler,
        states: Vec::new(),
        rbuf: vec![0; 4096],
        events: Vec::new(),
        notes: Vec::new(),
        signalled: false,
    };
    let listener = 0;
    let _first = TcpStream::connect(addr).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    lp.accept(listener);
    let conn_key = |lp: &Loop<'_, Count>| {
        lp.core
            .entries
            .iter()
            .find(|(_, e)| matches!(e.kind, Kind::Conn(_)))
            .map(|(k, e)| (k, lp.core.id_of(k, e.generation)))
            .expect("not accepted")
    };
    let (key, old) = conn_key(&lp);
    lp.core.abort(key, CloseReason::Aborted);
    lp.close_marked();
    // A second client takes the same slab key, with data waiting.
    let mut second = TcpStream::connect(addr).unwrap();
    second.write_all(b"for the new owner").unwrap();
    std::thread::sleep(Duration::from_millis(20));
    lp.accept(listener);
    let (again, new) = conn_key(&lp);
    assert_eq!(again, key, "the key was not reused");
    assert_ne!(new, old);
    let deliver = |lp: &mut Loop<'_, Count>, id: ConnId| {
        lp.events.push(crate::backend::Event {
            token: id.token(),
            what: crate::backend::What::Ready(Ready::READABLE),
        });
    };
    deliver(&mut lp, old);
    lp.events();
    assert_eq!(lp.core.metrics.snapshot().stale_events, 1);
    assert_eq!(lp.handler.bytes, 0, "a stale event was delivered");
    lp.events.clear();
    deliver(&mut lp, new);
    lp.events();
    assert_eq!(lp.handler.bytes, 17);
}
