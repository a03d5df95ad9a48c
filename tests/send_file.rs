//! `Ctx::send_file`: a file sent by the kernel from the page cache, on
//! every backend, in order with what is sent around it, whole to a slow
//! reader, not counted as memory against `max_output`.

mod common;

use common::*;
use ioplex::{Action, Config, Ctx, Handler, Peer};
use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const SIZE: usize = 4 << 20;

fn pattern() -> Vec<u8> {
    (0..SIZE).map(|i| (i % 253) as u8).collect()
}

/// On each line: `head\n`, the file (from byte 7), `tail\n`; counts drains.
struct Files {
    path: std::path::PathBuf,
    drains: Arc<AtomicUsize>,
}

impl Handler for Files {
    type Conn = ();
    fn on_connect(&mut self, _: &mut Ctx<'_>, _: Peer) {}
    fn on_data(&mut self, ctx: &mut Ctx<'_>, _: &mut (), _: &[u8]) -> Action {
        let file = std::fs::File::open(&self.path).unwrap();
        ctx.send(b"head\n");
        let id = ctx.id();
        ctx.send_file(id, file, 7, (SIZE - 7) as u64).unwrap();
        ctx.send(b"tail\n");
        Action::Continue
    }
    fn on_drain(&mut self, _: &mut Ctx<'_>, _: &mut ()) -> Action {
        self.drains.fetch_add(1, Ordering::Relaxed);
        Action::Continue
    }
}

#[test]
fn a_file_goes_out_whole_and_in_order_on_every_backend_to_a_slow_reader() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.bin");
    std::fs::write(&path, pattern()).unwrap();
    let mut want = b"head\n".to_vec();
    want.extend_from_slice(&pattern()[7..]);
    want.extend_from_slice(b"tail\n");
    for backend in backends() {
        let drains = Arc::new(AtomicUsize::new(0));
        let handler = Files {
            path: path.clone(),
            drains: drains.clone(),
        };
        // A 1 MiB max_output: the 4 MiB file is not memory, it must not trip it.
        let config = Config {
            max_output: 1 << 20,
            ..config_on(backend)
        };
        let server = Server::start(handler, config);
        let mut c = server.connect();
        c.write_all(b"go\n").unwrap();
        // Slow at first: the file waits for the socket.
        std::thread::sleep(Duration::from_millis(100));
        let mut got = vec![0; want.len()];
        c.read_exact(&mut got)
            .unwrap_or_else(|e| panic!("on {backend}: {e}: {:?}", server.metrics.snapshot()));
        assert!(got == want, "wrong bytes on {backend}");
        let m = server.metrics.clone();
        assert!(
            wait_for(Duration::from_secs(5), || drains.load(Ordering::Relaxed)
                == 1),
            "on_drain on {backend}"
        );
        let s = m.snapshot();
        assert!(s.sendfiles > 0 && s.output_limit == 0, "{backend}: {s:?}");
        // Twice more on the same connection: each file in its turn.
        c.write_all(b"again\n").unwrap();
        c.read_exact(&mut got).unwrap();
        assert!(got == want, "wrong bytes the second time on {backend}");
        server.stop();
    }
}
