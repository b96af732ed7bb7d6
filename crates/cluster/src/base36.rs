//! Base-36 numbers of fixed width, as swarmkit writes join tokens and IDs
//! (Go's `big.Int.Text(36)`, zero-padded on the left).

const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// `bytes` (big-endian unsigned) in base 36, padded with `0` to `width` characters.
pub(crate) fn encode(bytes: &[u8], width: usize) -> String {
    let mut num: Vec<u8> = bytes.to_vec();
    let mut out = Vec::new();
    while num.iter().any(|b| *b != 0) {
        let mut rem: u32 = 0;
        for b in num.iter_mut() {
            let cur = (rem << 8) | u32::from(*b);
            *b = (cur / 36) as u8;
            rem = cur % 36;
        }
        out.push(DIGITS[rem as usize]);
    }
    while out.len() < width {
        out.push(b'0');
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// Parses a base-36 number into `len` big-endian bytes (`None`: a bad digit, or too
/// large for `len` bytes).
pub(crate) fn decode(s: &str, len: usize) -> Option<Vec<u8>> {
    let mut num = vec![0u8; len];
    for c in s.bytes() {
        let d = DIGITS.iter().position(|x| *x == c.to_ascii_lowercase())? as u32;
        let mut carry = d;
        for b in num.iter_mut().rev() {
            let cur = u32::from(*b) * 36 + carry;
            *b = (cur & 0xff) as u8;
            carry = cur >> 8;
        }
        if carry != 0 {
            return None;
        }
    }
    Some(num)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_pads() {
        assert_eq!(encode(&[0], 3), "000");
        assert_eq!(encode(&[35], 1), "z");
        assert_eq!(encode(&[1, 0], 0), "74"); // 256 = 7*36 + 4
        let max = [0xffu8; 32];
        let s = encode(&max, 50);
        assert_eq!(s.len(), 50, "2^256-1 needs 50 base-36 digits");
        assert_eq!(decode(&s, 32).unwrap(), max.to_vec());
        assert_eq!(encode(&[0xff; 16], 25).len(), 25);
        assert!(decode("zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz", 32).is_none());
        assert!(decode("12-", 32).is_none());
    }
}
