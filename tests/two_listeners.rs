//! One loop, two listeners: `Ctx::local_addr` tells the handler which one
//! a connection came in on.

mod common;

use common::*;
use ioplex::{Action, Config, Ctx, Handler, Peer, Reactor};
use std::net::SocketAddr;
use std::time::Duration;

/// Greets each connection with the name of the listener it came in on.
struct Which {
    admin: SocketAddr,
}

impl Handler for Which {
    type Conn = ();
    fn on_connect(&mut self, ctx: &mut Ctx<'_>, _: Peer) {
        let here = ctx.local_addr(ctx.id());
        ctx.send(if here == Some(self.admin) {
            b"admin\n"
        } else {
            b"serve\n"
        });
        ctx.close(ctx.id());
    }
    fn on_data(&mut self, _: &mut Ctx<'_>, _: &mut (), _: &[u8]) -> Action {
        Action::Continue
    }
}

#[test]
fn a_connection_knows_the_listener_it_came_in_on() {
    let mut reactor = Reactor::new(Config::default()).unwrap();
    let serve = reactor.listen("127.0.0.1:0").unwrap();
    let admin = reactor.listen("127.0.0.1:0").unwrap();
    let handle = reactor.handle();
    let join = std::thread::spawn(move || reactor.run(&mut Which { admin }));
    for (addr, want) in [(serve, "serve\n"), (admin, "admin\n"), (serve, "serve\n")] {
        let mut c = connect(addr);
        assert_eq!(read_to_eof(&mut c), want.as_bytes(), "via {addr}");
    }
    handle.stop();
    assert!(wait_for(Duration::from_secs(10), || join.is_finished()));
    join.join().unwrap().unwrap();
}
