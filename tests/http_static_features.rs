//! http_static as users expect a static server (issue 16): directory
//! indexes and their 301, validators and 304, ranges (206/416), types,
//! HEAD; driven by curl where curl does it (`-r`, `-z`, `-C -`, `-L`).

mod common;
mod http_static_util;

use http_static_util::*;

const DATA: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// `site()` plus a directory with an index, one without, and typed files.
fn typed_site() -> tempfile::TempDir {
    let dir = site();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("docs")).unwrap();
    std::fs::create_dir_all(root.join("empty")).unwrap();
    std::fs::write(root.join("docs/index.html"), b"<p>docs</p>").unwrap();
    std::fs::write(root.join("index.html"), b"<p>home</p>").unwrap();
    std::fs::write(root.join("data.txt"), DATA).unwrap();
    for name in [
        "a.css", "a.js", "a.png", "a.svg", "a.wasm", "a.md", "a.qqq", "a.JPG",
    ] {
        std::fs::write(root.join(name), b"x").unwrap();
    }
    dir
}

#[test]
fn a_directory_gets_its_index_and_a_301_without_its_slash() {
    let dir = typed_site();
    let web = Web::start(dir.path(), &[]);
    let r = curl(&[&web.url("/docs/")]);
    assert_eq!((r.status, &r.body[..]), (200, &b"<p>docs</p>"[..]));
    assert_eq!(
        header(&r.head, "Content-Type"),
        Some("text/html; charset=utf-8")
    );
    let r = curl(&[&web.url("/")]);
    assert_eq!((r.status, &r.body[..]), (200, &b"<p>home</p>"[..]));
    let r = curl(&[&web.url("/docs")]);
    assert_eq!(r.status, 301);
    assert_eq!(header(&r.head, "Location"), Some("/docs/"));
    let r = curl(&[&web.url("/docs?x=1")]);
    assert_eq!(header(&r.head, "Location"), Some("/docs/?x=1"));
    // curl follows it, on the same connection.
    let r = curl(&["-L", "-v", &web.url("/docs")]);
    assert!(
        r.stderr.contains("Re-using existing connection"),
        "{}",
        r.stderr
    );
    assert!(r.body.ends_with(b"<p>docs</p>"));
    let r = curl(&[&web.url("/empty/")]);
    assert_eq!(r.status, 404);
}

#[test]
fn validators_make_a_revalidation_a_304() {
    let dir = typed_site();
    let web = Web::start(dir.path(), &[]);
    let url = web.url("/data.txt");
    let r = curl(&[&url]);
    let etag = header(&r.head, "ETag").expect("an ETag").to_string();
    let modified = header(&r.head, "Last-Modified")
        .expect("a Last-Modified")
        .to_string();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    assert!(modified.ends_with(" GMT"), "{modified}");
    assert_eq!(header(&r.head, "Accept-Ranges"), Some("bytes"));
    assert!(header(&r.head, "Date").is_some());
    for inm in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"x\", {etag}"),
        "*".into(),
    ] {
        let r = curl(&["-H", &format!("If-None-Match: {inm}"), &url]);
        assert_eq!(r.status, 304, "If-None-Match: {inm}");
        assert!(r.body.is_empty());
        assert_eq!(header(&r.head, "ETag"), Some(&*etag));
    }
    let r = curl(&["-H", "If-None-Match: \"other\"", &url]);
    assert_eq!((r.status, &r.body[..]), (200, DATA));
    // If-Modified-Since (curl -z), ignored when If-None-Match is there.
    let r = curl(&["-z", &modified, &url]);
    assert_eq!(r.status, 304);
    let r = curl(&["-z", "Sat, 01 Jan 2000 00:00:00 GMT", &url]);
    assert_eq!(r.status, 200);
    let both = ["-z", &modified, "-H", "If-None-Match: \"other\"", &url];
    assert_eq!(curl(&both).status, 200);
    // A changed file has a new ETag.
    std::fs::write(dir.path().join("root/data.txt"), b"changed").unwrap();
    let r = curl(&["-H", &format!("If-None-Match: {etag}"), &url]);
    assert_eq!((r.status, &r.body[..]), (200, &b"changed"[..]));
    assert_ne!(header(&r.head, "ETag"), Some(&*etag));
}

#[test]
fn one_range_is_206_an_unsatisfiable_one_416_and_several_get_200() {
    let dir = typed_site();
    let web = Web::start(dir.path(), &[]);
    let url = web.url("/data.txt");
    let n = DATA.len();
    for (range, part, from, to) in [
        ("0-9", &DATA[..10], 0, 9),
        ("30-", &DATA[30..], 30, n - 1),
        ("-6", &DATA[n - 6..], n - 6, n - 1),
        ("10-1000", &DATA[10..], 10, n - 1),
    ] {
        let r = curl(&["-r", range, &url]);
        assert_eq!((r.status, &r.body[..]), (206, part), "-r {range}");
        let want = format!("bytes {from}-{to}/{n}");
        assert_eq!(header(&r.head, "Content-Range"), Some(&*want));
        assert_eq!(
            header(&r.head, "Content-Length"),
            Some(&*part.len().to_string())
        );
    }
    let r = curl(&["-r", &format!("{n}-"), &url]);
    assert_eq!(r.status, 416);
    assert_eq!(
        header(&r.head, "Content-Range"),
        Some(&*format!("bytes */{n}"))
    );
    for whole in ["0-1,5-6", "5-1"] {
        let r = curl(&["-r", whole, &url]);
        assert_eq!((r.status, &r.body[..]), (200, DATA), "-r {whole}");
    }
    // HEAD ignores Range; If-Range sends the part only while the file is the same.
    let r = curl(&["-I", "-r", "0-9", &url]);
    assert_eq!(r.status, 200);
    let etag = header(&r.head, "ETag").unwrap().to_string();
    let r = curl(&["-r", "0-9", "-H", &format!("If-Range: {etag}"), &url]);
    assert_eq!(r.status, 206);
    let r = curl(&["-r", "0-9", "-H", "If-Range: \"old\"", &url]);
    assert_eq!((r.status, &r.body[..]), (200, DATA));
}

#[test]
fn curl_resumes_a_download_where_it_stopped() {
    let dir = typed_site();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.path().join("root/big.bin"), &big).unwrap();
    let web = Web::start(dir.path(), &[]);
    let out = dir.path().join("download.bin");
    std::fs::write(&out, &big[..1_234_567]).unwrap();
    let path = out.to_str().unwrap();
    let (status, _) = curl_plain(&[
        "-C",
        "-",
        "-o",
        path,
        "-w",
        "%{http_code}",
        &web.url("/big.bin"),
    ]);
    assert_eq!(status, b"206");
    assert!(
        std::fs::read(&out).unwrap() == big,
        "the resumed file differs"
    );
}

#[test]
fn types_come_from_the_extension() {
    let dir = typed_site();
    let web = Web::start(dir.path(), &[]);
    for (name, ty) in [
        ("a.css", "text/css; charset=utf-8"),
        ("a.js", "text/javascript; charset=utf-8"),
        ("a.png", "image/png"),
        ("a.JPG", "image/jpeg"),
        ("a.svg", "image/svg+xml"),
        ("a.wasm", "application/wasm"),
        ("a.md", "text/plain; charset=utf-8"),
        ("data.txt", "text/plain; charset=utf-8"),
        ("a.qqq", "application/octet-stream"),
    ] {
        let r = curl(&["-I", &web.url(&format!("/{name}"))]);
        assert_eq!(
            (r.status, header(&r.head, "Content-Type")),
            (200, Some(ty)),
            "{name}"
        );
    }
}

#[test]
fn head_gets_no_body_for_a_404_or_a_301_and_the_next_reply_is_intact() {
    use std::io::Write;
    let dir = typed_site();
    let web = Web::start(dir.path(), &[]);
    let mut s = common::connect(web.addr);
    let heads = b"HEAD /nope HTTP/1.1\r\nHost: x\r\n\r\nHEAD /docs HTTP/1.1\r\nHost: x\r\n\r\n";
    s.write_all(heads).unwrap();
    s.write_all(b"GET /data.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (missing, moved) = (read_head(&mut s), read_head(&mut s));
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
    assert!(moved.starts_with("HTTP/1.1 301"), "{moved}");
    let r = read_reply(&mut s);
    assert_eq!((r.status, &r.body[..]), (200, DATA), "{}", r.head);
}
