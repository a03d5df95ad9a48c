//! Note 004's static web server (examples/http_static) driven by `curl`,
//! plus raw sockets for what curl will not send (NUL, slow heads, pipelining).

mod common;
mod http_static_util;

use common::*;
use http_static_util::*;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

fn start(dir: &Path, extra: &[&str]) -> Web {
    Web::start(dir, extra)
}

#[test]
fn get_serves_the_file_with_its_length_and_type() {
    let dir = site();
    let server = start(dir.path(), &[]);
    let r = curl(&[&format!("http://{}/HelloWorld.html", server.addr)]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, PAGE);
    assert_eq!(header(&r.head, "Content-Length"), Some("26"));
    assert_eq!(
        header(&r.head, "Content-Type"),
        Some("text/html; charset=utf-8")
    );
    let r = curl(&[&format!("http://{}/sub/data.json?x=1", server.addr)]);
    assert_eq!((r.status, &r.body[..]), (200, &b"{\"a\":1}"[..]));
    assert_eq!(header(&r.head, "Content-Type"), Some("application/json"));
    // A symlink that stays inside the root is fine.
    let r = curl(&[&format!("http://{}/inside.html", server.addr)]);
    assert_eq!((r.status, &r.body[..]), (200, PAGE));
}

#[test]
fn head_gives_the_headers_and_no_body() {
    let dir = site();
    let server = start(dir.path(), &[]);
    let r = curl(&["-I", &format!("http://{}/HelloWorld.html", server.addr)]);
    assert_eq!(r.status, 200);
    assert_eq!(header(&r.head, "Content-Length"), Some("26"));
    assert!(r.body.is_empty());
}

#[test]
fn missing_file_is_404_and_bad_method_is_405() {
    let dir = site();
    let server = start(dir.path(), &[]);
    let r = curl(&[&format!("http://{}/abc.html", server.addr)]);
    assert_eq!(r.status, 404);
    assert_eq!(
        header(&r.head, "Content-Length"),
        Some(&*r.body.len().to_string())
    );
    let r = curl(&[
        "-X",
        "DELETE",
        &format!("http://{}/HelloWorld.html", server.addr),
    ]);
    assert_eq!(r.status, 405);
    assert_eq!(header(&r.head, "Allow"), Some("GET, HEAD"));
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let dir = site();
    let server = start(dir.path(), &[]);
    let url = format!("http://{}/HelloWorld.html", server.addr);
    let r = curl(&["-v", &url, &url, &url]);
    assert_eq!(
        r.stderr.matches("Re-using existing connection").count(),
        2,
        "{}",
        r.stderr
    );
}

#[test]
fn a_large_file_arrives_byte_for_byte() {
    let dir = site();
    // 5 MiB of a simple PRNG: bigger than the 256 KiB the server queues at once.
    let mut x: u32 = 12345;
    let big: Vec<u8> = (0..5 << 20)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16) as u8
        })
        .collect();
    std::fs::write(dir.path().join("root/big.bin"), &big).unwrap();
    let server = start(dir.path(), &[]);
    let r = curl(&[&format!("http://{}/big.bin", server.addr)]);
    assert_eq!(r.status, 200);
    assert_eq!(
        header(&r.head, "Content-Length"),
        Some(&*big.len().to_string())
    );
    assert_eq!(
        header(&r.head, "Content-Type"),
        Some("application/octet-stream")
    );
    assert!(r.body == big, "body differs ({} bytes)", r.body.len());
}

#[test]
fn traversal_in_every_spelling_never_leaks_a_byte_from_outside() {
    let dir = site();
    let server = start(dir.path(), &[]);
    let targets = [
        "/../secret.txt",
        "/sub/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",
        "/.%2e/secret.txt",
        "/%2e./secret.txt",
        "/%252e%252e/secret.txt",
        "/%252e",
        "/..%2fsecret.txt",
        "/..%5csecret.txt",
        "/..\\secret.txt",
        "/sub\\..\\..\\secret.txt",
        "/link.txt",
        "/outdir/secret.txt",
        "/outdir/",
        "//etc/passwd",
        "/etc/passwd",
        "/HelloWorld.html%00.txt",
        "/%zz",
    ];
    for t in targets {
        let url = format!("http://{}{t}", server.addr);
        let r = curl(&["--path-as-is", &url]);
        assert!(matches!(r.status, 400 | 403 | 404), "{t} -> {}", r.status);
        assert!(
            !r.body.windows(SECRET.len()).any(|w| w == SECRET),
            "{t} leaked"
        );
    }
    // Absolute-form target and a raw NUL byte: sent by hand.
    for line in [
        &b"GET http://localhost/../secret.txt HTTP/1.1"[..],
        b"GET /HelloWorld.html\0/../../secret.txt HTTP/1.1",
        b"GET C:\\secret.txt HTTP/1.1",
    ] {
        let r = raw(server.addr, &[line, b"\r\nHost: x\r\n\r\n"].concat());
        assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(line));
        assert!(!r.body.windows(SECRET.len()).any(|w| w == SECRET));
    }
}

#[test]
fn content_length_with_transfer_encoding_is_400() {
    let dir = site();
    let server = start(dir.path(), &[]);
    let url = format!("http://{}/HelloWorld.html", server.addr);
    let r = curl(&[
        "-H",
        "Content-Length: 5",
        "-H",
        "Transfer-Encoding: chunked",
        &url,
    ]);
    assert_eq!(r.status, 400);
    assert!(r.body.starts_with(b"400: Content-Length together"));
    for bad in [
        &b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"[..],
        b"GET /HelloWorld.html HTTP/1.1\r\n\r\n", // no Host
        b"GET /HelloWorld.html HTTP/1.1\r\nHost : x\r\n\r\n",
        b"GET /HelloWorld.html HTTP/2.0\r\nHost: x\r\n\r\n",
        b"garbage\r\n\r\n",
    ] {
        let r = raw(server.addr, bad);
        assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(bad));
        assert!(r.head.contains("Connection: close"));
    }
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let dir = site();
    let server = start(dir.path(), &[]);
    let one = b"GET /HelloWorld.html HTTP/1.1\r\nHost: x\r\n\r\n";
    let two = b"HEAD /sub/data.json HTTP/1.1\r\nHost: x\r\n\r\n";
    let last = b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let mut s = connect(server.addr);
    s.write_all(&[&one[..], two, last].concat()).unwrap();
    let all = read_to_eof(&mut s);
    let text = String::from_utf8(all).unwrap();
    assert_eq!(text.matches("HTTP/1.1 ").count(), 3, "{text}");
    let a = text.find("200 OK").unwrap();
    let b = text[a + 1..].find("200 OK").unwrap() + a + 1;
    let c = text.find("404 Not Found").unwrap();
    assert!(a < b && b < c, "{text}");
    assert!(text.contains("<head>Hello world!</head>\n"));
    assert!(text.ends_with("404: not found\n"));
}

#[test]
fn oversized_head_is_431() {
    let dir = site();
    let server = start(dir.path(), &[]);
    let mut req = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    req.extend(std::iter::repeat_n(b'a', 9000));
    let r = raw(server.addr, &req);
    assert_eq!(r.status, 431);
}

#[test]
fn slowloris_is_closed_at_the_header_deadline_while_others_are_served() {
    let dir = site();
    let server = start(dir.path(), &["--header-timeout", "1"]);
    let mut slow = connect(server.addr);
    let started = Instant::now();
    slow.write_all(b"GET /HelloWorld.html HTTP/1.1\r\n")
        .unwrap();
    let mut writer = slow.try_clone().unwrap();
    std::thread::spawn(move || {
        // One header byte every 200 ms; the server cuts us off at 1 s.
        for b in b"Host: localhost\r\nX: yyyyyyyyyyyyyy".iter() {
            if writer.write_all(&[*b]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    let r = curl(&[&format!("http://{}/HelloWorld.html", server.addr)]);
    assert_eq!((r.status, &r.body[..]), (200, PAGE));
    let r = split(&read_to_eof(&mut slow), String::new());
    assert_eq!(r.status, 408);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "closed after {took:?}");
}

#[test]
fn a_directory_swapped_for_a_symlink_mid_request_never_leaks() {
    // root/d/secret.txt is a harmless page; a thread keeps swapping the
    // directory root/d for a symlink to ../outside (which holds a real
    // secret.txt) and back. A request whose path check saw the directory
    // but whose open meets the symlink must not follow it out.
    let dir = site();
    let root = dir.path().join("root");
    std::fs::create_dir(root.join("d")).unwrap();
    std::fs::write(root.join("d/secret.txt"), PAGE).unwrap();
    let server = start(dir.path(), &[]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let (root, stop, outside) = (root.clone(), stop.clone(), dir.path().join("outside"));
        std::thread::spawn(move || {
            let (d, aside) = (root.join("d"), root.join("d.aside"));
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                std::fs::rename(&d, &aside).unwrap();
                std::os::unix::fs::symlink(&outside, &d).unwrap();
                std::fs::remove_file(&d).unwrap();
                std::fs::rename(&aside, &d).unwrap();
            }
        })
    };
    let (mut served, mut refused) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut leaked = None;
    let mut s = connect(server.addr);
    while Instant::now() < deadline && leaked.is_none() {
        s.write_all(b"GET /d/secret.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let head = read_head(&mut s);
        let len: usize = header(&head, "Content-Length").unwrap().parse().unwrap();
        let body = read_n(&mut s, len);
        if body.windows(SECRET.len()).any(|w| w == SECRET) {
            leaked = Some(head.clone());
        }
        match head.split(' ').nth(1) {
            Some("200") => served += 1,
            _ => refused += 1,
        }
        if head.contains("Connection: close") {
            s = connect(server.addr);
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    swapper.join().unwrap();
    eprintln!("swap race: {served} served from inside, {refused} refused");
    assert!(leaked.is_none(), "leaked the secret: {leaked:?}");
    assert!(served > 0 && refused > 0, "the race was not exercised");
}
