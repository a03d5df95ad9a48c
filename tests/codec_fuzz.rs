//! Property tests over every codec: any byte sequence, split anywhere and
//! fed as the reactor feeds it (unconsumed tails handed back with the next
//! bytes), gives the same frames as unsplit, or the same clean error; never
//! a panic. Frame sizes are bounded before any allocation.

use ioplex::Action;
use ioplex::codec::{Codec, CodecError, Handshake, Hs, LengthPrefixed, Lines, decode_all};
use proptest::prelude::*;

/// What a stream decodes to: owned frames, then the error that stopped it (if any).
type Outcome = (Vec<Vec<u8>>, Option<CodecError>);

/// Feeds `chunks` the way the reactor does: each call sees the kept tail
/// plus the new bytes; `Consumed(n)` keeps everything after `n`.
fn feed<C: Codec>(
    mut codec: C,
    chunks: &[&[u8]],
    own: impl Fn(C::Frame<'_>) -> Vec<u8>,
) -> Outcome {
    let mut frames = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    for chunk in chunks {
        pending.extend_from_slice(chunk);
        match decode_all(&mut codec, &pending, |f| {
            frames.push(own(f));
            Action::Continue
        }) {
            Ok(Action::Consumed(n)) => {
                pending.drain(..n);
            }
            Ok(_) => pending.clear(),
            Err(e) => return (frames, Some(e)),
        }
    }
    (frames, None)
}

/// Splits `data` at the sorted cut points.
fn split<'a>(data: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    points.sort();
    let mut out = Vec::new();
    let mut last = 0;
    for p in points {
        out.push(&data[last..p]);
        last = p;
    }
    out.push(&data[last..]);
    out
}

fn hs_bytes(f: Hs<'_>) -> Vec<u8> {
    match f {
        Hs::Ready(n) => format!("Ready|{n}").into_bytes(),
        Hs::Start => b"Start".to_vec(),
        Hs::Body(b) => b.to_vec(),
    }
}

/// Byte soup that often looks like the protocols: their tokens mixed with noise.
fn soup() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"Ready|".to_vec()),
        Just(b"Start".to_vec()),
        Just(vec![0, 0, 0, 3]),
        Just(vec![0xff, 0xff, 0xff, 0xff]),
        Just(vec![0, 0, 0, 0]),
        (0u32..40).prop_map(|n| n.to_string().into_bytes()),
        proptest::collection::vec(any::<u8>(), 0..12),
    ];
    proptest::collection::vec(token, 0..24).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    #[test]
    fn lines_split_anywhere_decode_as_unsplit(data in soup(), cuts in proptest::collection::vec(any::<usize>(), 0..6)) {
        let whole = feed(Lines::new(16), &[&data], |l| l.to_vec());
        let parts = feed(Lines::new(16), &split(&data, &cuts), |l| l.to_vec());
        prop_assert_eq!(parts, whole);
    }

    #[test]
    fn length_prefixed_split_anywhere_decodes_as_unsplit(data in soup(), cuts in proptest::collection::vec(any::<usize>(), 0..6)) {
        let whole = feed(LengthPrefixed::new(64), &[&data], |b| b.to_vec());
        let parts = feed(LengthPrefixed::new(64), &split(&data, &cuts), |b| b.to_vec());
        prop_assert_eq!(parts, whole);
    }

    #[test]
    fn handshake_split_anywhere_decodes_as_unsplit(data in soup(), cuts in proptest::collection::vec(any::<usize>(), 0..6)) {
        let whole = feed(Handshake::new(64), &[&data], hs_bytes);
        let parts = feed(Handshake::new(64), &split(&data, &cuts), hs_bytes);
        prop_assert_eq!(parts, whole);
    }

    #[test]
    fn encoded_frames_round_trip_through_any_split(
        bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..80), 0..8),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut codec = LengthPrefixed::new(80);
        let mut wire = Vec::new();
        for b in &bodies {
            codec.encode(b, &mut wire).unwrap();
        }
        let (frames, err) = feed(LengthPrefixed::new(80), &split(&wire, &cuts), |b| b.to_vec());
        prop_assert_eq!(err, None);
        prop_assert_eq!(frames, bodies);
    }
}

#[test]
fn a_length_prefix_of_u32_max_is_rejected_from_the_header_alone() {
    let mut codec = LengthPrefixed::new(8 << 20);
    let err = codec.decode(&[0xff, 0xff, 0xff, 0xff]).unwrap_err();
    assert_eq!(
        err,
        CodecError::FrameTooLarge {
            len: u32::MAX as u64,
            max: 8 << 20
        }
    );
}

#[test]
fn a_flood_of_empty_frames_is_decoded_without_holding_anything() {
    // 100,000 empty frames in one read: each is 4 bytes of header and no body.
    let data = vec![0u8; 400_000];
    let mut n = 0usize;
    let action = decode_all(&mut LengthPrefixed::new(1024), &data, |b| {
        assert!(b.is_empty());
        n += 1;
        Action::Continue
    });
    assert_eq!(action, Ok(Action::Continue));
    assert_eq!(n, 100_000);
}
