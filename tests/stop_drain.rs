//! A graceful stop under a connect storm loses no connection the kernel
//! accepted: the listener takes no new SYN, lets begun handshakes finish,
//! serves what was queued, and only then closes (closing it with
//! connections queued resets them).

mod common;

use common::storm::{Greeter, storm};
use common::*;
use ioplex::Config;

#[test]
fn stopping_a_reactor_under_a_connect_storm_loses_no_connection_the_kernel_accepted() {
    for backend in [ioplex::Backend::Mio, ioplex::Backend::Poll] {
        let server = Server::start(Greeter, config_on(backend));
        let addr = server.addr;
        let s = storm(addr, 16, b"hi\n", move || {
            server.stop();
        });
        eprintln!(
            "{backend}: stop under a connect storm: {} connects made, {} answered",
            s.made, s.answered
        );
        assert!(
            s.lost.is_empty(),
            "{backend}: {} lost, e.g. {:?}",
            s.lost.len(),
            s.lost[0]
        );
        assert_eq!(s.made, s.answered, "{backend}");
    }
}

#[test]
fn a_stop_with_no_client_takes_about_accept_drain() {
    let server = Server::start(Greeter, Config::default());
    let t = std::time::Instant::now();
    server.stop();
    let took = t.elapsed();
    eprintln!("stop of an idle reactor took {took:?}");
    assert!(took >= Config::default().accept_drain);
    assert!(took < Config::default().accept_drain * 20, "{took:?}");
}
