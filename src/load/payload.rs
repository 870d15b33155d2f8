//! The sorter's payload for a record: its link targets, then its encoded value. Carrying the
//! targets beside the value lets the sinks write relation edges without decoding values.

/// `[count][len][target]…[value]`; targets are identifiers (at most 255 bytes), "" for none.
pub fn join(targets: &[&str], value: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(1 + targets.iter().map(|t| t.len() + 1).sum::<usize>() + value.len());
    p.push(targets.len() as u8);
    for t in targets {
        let t = &t.as_bytes()[..t.len().min(255)];
        p.push(t.len() as u8);
        p.extend_from_slice(t);
    }
    p.extend_from_slice(value);
    p
}

/// Splits a payload into its targets and its value.
pub fn split(p: &[u8]) -> (Vec<&str>, &[u8]) {
    let n = usize::from(p[0]);
    let mut at = 1;
    let mut targets = Vec::with_capacity(n);
    for _ in 0..n {
        let len = usize::from(p[at]);
        targets.push(std::str::from_utf8(&p[at + 1..at + 1 + len]).unwrap_or(""));
        at += 1 + len;
    }
    (targets, &p[at..])
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip() {
        let p = super::join(&["a", "", "xyz"], b"value");
        assert_eq!(super::split(&p), (vec!["a", "", "xyz"], &b"value"[..]));
    }
}
