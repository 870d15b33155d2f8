//! Record keys packed four bits a digit, in the same order as the keys.
//!
//! The registries' keys are mostly decimal digits (an identity number is 17 digits and a
//! check character; a credit code 18 characters, most of them digits), and the indexes keep
//! one key per located record and per document. Each digit becomes one nibble (`2..=11`);
//! any other byte an escape nibble (`1` below `'0'`, `12` above `'9'`) and its two nibbles;
//! an odd count of nibbles ends with a `0`. Packed keys compare as the keys do, byte for byte,
//! so what is sorted by key stays sorted, and a front-coded run of them shares as much.
//! An identity number takes 9 bytes instead of 18 (10 with a check `X`).

const LOW: u8 = 1;
const DIGIT0: u8 = 2;
const HIGH: u8 = 12;

/// Appends `key` packed to `out`.
pub fn pack(key: &[u8], out: &mut Vec<u8>) {
    let mut half: Option<u8> = None;
    let mut nibble = |n: u8| match half.take() {
        Some(h) => out.push(h << 4 | n),
        None => half = Some(n),
    };
    for &b in key {
        match b {
            b'0'..=b'9' => nibble(b - b'0' + DIGIT0),
            _ => {
                nibble(if b < b'0' { LOW } else { HIGH });
                nibble(b >> 4);
                nibble(b & 15);
            }
        }
    }
    if let Some(h) = half {
        out.push(h << 4);
    }
}

/// `key` packed.
pub fn packed(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() / 2 + 2);
    pack(key, &mut out);
    out
}

/// Appends the key `packed` holds to `out`; false (and `out` as far as it got) when the bytes
/// are not a packed key.
pub fn unpack(packed: &[u8], out: &mut Vec<u8>) -> bool {
    let mut nibbles = packed.iter().flat_map(|b| [b >> 4, b & 15]);
    let last = packed.len() * 2;
    let mut at = 0;
    while let Some(n) = nibbles.next() {
        at += 1;
        match n {
            0 => return at == last,
            LOW | HIGH => match (nibbles.next(), nibbles.next()) {
                (Some(h), Some(l)) => {
                    at += 2;
                    let b = h << 4 | l;
                    if (n == LOW) != (b < b'0') || b.is_ascii_digit() {
                        return false;
                    }
                    out.push(b);
                }
                _ => return false,
            },
            d if d < DIGIT0 + 10 => out.push(b'0' + d - DIGIT0),
            _ => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn back(p: &[u8]) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        unpack(p, &mut out).then_some(out)
    }

    #[test]
    fn identity_numbers_take_half_their_bytes() {
        assert_eq!(packed(b"350203194001010007").len(), 9);
        assert_eq!(packed(b"35020319400101000X").len(), 10);
        assert_eq!(back(&packed(b"91350211202843559E")).unwrap(), b"91350211202843559E");
        assert_eq!(packed(b""), b"");
        assert_eq!(back(b"").unwrap(), b"");
    }

    #[test]
    fn bytes_that_are_not_a_packed_key_are_refused() {
        // A lone pad, a digit nibble past 9, an escape cut short, an escaped digit, a pad
        // before the end.
        for bad in [&[0x00][..], &[0xd0], &[0x1f], &[0xc3, 0x30], &[0x30, 0x33]] {
            assert_eq!(back(bad), None, "{bad:?}");
        }
    }

    fn key() -> impl Strategy<Value = Vec<u8>> {
        // Mostly digits, as the registries' keys are, with any byte among them.
        proptest::collection::vec(prop_oneof![4 => b'0'..=b'9', 1 => any::<u8>()], 0..24)
    }

    proptest! {
        /// A key comes back from its packed form, and two packed keys compare as the keys.
        #[test]
        fn packing_keeps_keys_and_their_order(a in key(), b in key()) {
            let (pa, pb) = (packed(&a), packed(&b));
            prop_assert_eq!(back(&pa), Some(a.clone()));
            prop_assert_eq!(pa.cmp(&pb), a.cmp(&b));
            prop_assert!(pa.len() <= a.len() * 3 / 2 + 1);
        }

        /// Any bytes unpack to something or are refused, never a panic; what unpacks packs
        /// back to the same bytes (one packed form a key).
        #[test]
        fn any_bytes_unpack_or_are_refused(p in proptest::collection::vec(any::<u8>(), 0..16)) {
            if let Some(k) = back(&p) {
                prop_assert_eq!(packed(&k), p);
            }
        }
    }
}
