//! A connect storm: clients connecting as fast as they can while a server
//! stops, each expecting the server's greeting and then EOF. Counts the
//! connects that were made (the kernel completed the handshake) against
//! those the server answered.

use super::{IO_TIMEOUT, wait_for};
use ioplex::{Action, Ctx, Handler, Peer};
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Greets every client with `hi\n` and closes: a connection the server
/// served is one that read `hi` before its EOF.
pub struct Greeter;

impl Handler for Greeter {
    type Conn = ();
    fn on_connect(&mut self, ctx: &mut Ctx<'_>, _: Peer) {
        ctx.send(b"hi\n");
        ctx.close(ctx.id());
    }
    fn on_data(&mut self, _: &mut Ctx<'_>, _: &mut (), _: &[u8]) -> Action {
        Action::Continue
    }
}

/// What a storm saw.
pub struct Storm {
    /// Connects that succeeded.
    pub made: usize,
    /// Of those, the ones that read `greeting` and then EOF.
    pub answered: usize,
    /// What the others got instead (a reset, a short read…).
    pub lost: Vec<String>,
}

/// Runs `clients` threads connecting to `addr` in a loop; once more than
/// 300 connects were made, calls `stop` (which returns once the server has
/// stopped), waits 100 ms more and ends the storm.
pub fn storm(addr: SocketAddr, clients: usize, greeting: &[u8], stop: impl FnOnce()) -> Storm {
    let done = Arc::new(AtomicBool::new(false));
    let (made, answered) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let lost = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (done, made, answered, lost) =
                (done.clone(), made.clone(), answered.clone(), lost.clone());
            let greeting = greeting.to_vec();
            std::thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(300))
                    else {
                        continue; // not made: refused, or its SYN dropped
                    };
                    made.fetch_add(1, Ordering::Relaxed);
                    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
                    let mut got = Vec::new();
                    match s.read_to_end(&mut got) {
                        Ok(_) if got == greeting => {
                            answered.fetch_add(1, Ordering::Relaxed);
                        }
                        r => lost.lock().unwrap().push(format!("{r:?} after {got:?}")),
                    }
                }
            })
        })
        .collect();
    let started = wait_for(Duration::from_secs(10), || {
        made.load(Ordering::Relaxed) > 300
    });
    stop();
    // Past the stop, connects fail: refused, or SYNs dropped then refused.
    std::thread::sleep(Duration::from_millis(100));
    done.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    assert!(started, "the storm never reached 300 connects");
    let lost = std::mem::take(&mut *lost.lock().unwrap());
    Storm {
        made: made.load(Ordering::Relaxed),
        answered: answered.load(Ordering::Relaxed),
        lost,
    }
}
