//! Lossless, unambiguous keys for any file name.
//!
//! Unix names are arbitrary bytes except `/` and NUL, but keys are UTF-8 text that people
//! read, diff line by line and sort. The scheme, applied to each name:
//!
//! * a backslash becomes `\\`;
//! * every byte of an invalid UTF-8 sequence becomes `\xNN` (two lowercase hex digits);
//! * every byte of a control character (U+0000–U+001F, U+007F, and the C1 controls
//!   U+0080–U+009F) becomes `\xNN`, so a newline is `\x0a` and can never split a line;
//! * everything else is copied as is.
//!
//! Because `\` itself is always escaped, decoding is unique: `\\` → `\`, `\xNN` → byte NN.
//! A key is `/` followed by the escaped names joined by `/`; [`unescape`] inverts a key
//! (or a configured path, which is written the same way) back to raw path bytes.

/// Appends the escaped form of the raw name `name` to `out`.
pub fn escape_into(name: &[u8], out: &mut String) {
    let mut rest = name;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                push_clean(s, out);
                return;
            }
            Err(e) => {
                let (good, bad) = rest.split_at(e.valid_up_to());
                // `good` was just validated, so this never falls back to the default.
                push_clean(std::str::from_utf8(good).unwrap_or_default(), out);
                let n = e.error_len().unwrap_or(bad.len());
                for &b in &bad[..n] {
                    push_hex(b, out);
                }
                rest = &bad[n..];
            }
        }
    }
}

/// The escaped form of `name` as a new string.
pub fn escape(name: &[u8]) -> String {
    let mut s = String::with_capacity(name.len());
    escape_into(name, &mut s);
    s
}

fn push_clean(s: &str, out: &mut String) {
    if !s
        .bytes()
        .any(|b| b < 0x20 || b == 0x7f || b == b'\\' || b == 0xc2)
    {
        // Fast path: nothing to escape (0xc2 leads every C1 control's encoding).
        out.push_str(s);
        return;
    }
    for c in s.chars() {
        if c == '\\' {
            out.push_str("\\\\");
        } else if c.is_control() {
            let mut buf = [0u8; 4];
            for &b in c.encode_utf8(&mut buf).as_bytes() {
                push_hex(b, out);
            }
        } else {
            out.push(c);
        }
    }
}

fn push_hex(b: u8, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('\\');
    out.push('x');
    out.push(HEX[usize::from(b >> 4)] as char);
    out.push(HEX[usize::from(b & 15)] as char);
}

/// Decodes an escaped name or key back to raw bytes. Errors on a dangling or unknown escape.
pub fn unescape(s: &str) -> Result<Vec<u8>, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        match bytes.get(i + 1) {
            Some(b'\\') => {
                out.push(b'\\');
                i += 2;
            }
            Some(b'x') => {
                let hex = bytes
                    .get(i + 2..i + 4)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("bad \\x escape in {s:?}"))?;
                out.push(hex);
                i += 4;
            }
            _ => return Err(format!("bad escape in {s:?}: use \\\\ or \\xNN")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_are_unchanged() {
        assert_eq!(escape(b"sshd_config"), "sshd_config");
        assert_eq!(escape("héllo wörld".as_bytes()), "héllo wörld");
    }

    #[test]
    fn newline_name_round_trips() {
        let raw = b"evil\nname";
        let esc = escape(raw);
        assert_eq!(esc, "evil\\x0aname");
        assert!(!esc.contains('\n'));
        assert_eq!(unescape(&esc).unwrap(), raw);
    }

    #[test]
    fn invalid_utf8_name_round_trips() {
        let raw = b"caf\xe9-\xff\xfe";
        let esc = escape(raw);
        assert_eq!(esc, "caf\\xe9-\\xff\\xfe");
        assert_eq!(unescape(&esc).unwrap(), raw);
    }

    #[test]
    fn backslash_and_lookalike_escapes_are_distinct() {
        // A name that literally contains the text `\x0a` must not collide with a newline.
        let literal = escape(b"a\\x0a");
        let newline = escape(b"a\n");
        assert_ne!(literal, newline);
        assert_eq!(unescape(&literal).unwrap(), b"a\\x0a");
        assert_eq!(unescape(&newline).unwrap(), b"a\n");
    }

    #[test]
    fn c1_controls_and_del_are_escaped() {
        let raw = "a\u{85}b\u{7f}".as_bytes();
        let esc = escape(raw);
        assert_eq!(esc, "a\\xc2\\x85b\\x7f");
        assert_eq!(unescape(&esc).unwrap(), raw);
    }

    #[test]
    fn bad_escapes_are_refused() {
        assert!(unescape("a\\").is_err());
        assert!(unescape("a\\q").is_err());
        assert!(unescape("a\\xZZ").is_err());
    }
}
