//! Already-demodulated frames as text, one per line: `*8D4840D6...;`
//! (AVR), bare hex, or either preceded by a time in seconds and a space.

/// A problem with one line of hex input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HexLineError {
    /// The line holds a character that is not a hex digit.
    #[error("not hex: {0:?}")]
    NotHex(String),
    /// Not 14 or 28 hex digits.
    #[error("{0} hex digits: a frame has 14 or 28")]
    BadLength(usize),
    /// The time prefix does not parse.
    #[error("bad time {0:?}")]
    BadTime(String),
}

/// A frame from one line: its time (seconds) if the line gave one, and bytes.
pub type HexFrame = (Option<f64>, Vec<u8>);

/// Parse one line. `Ok(None)` for blank lines and `#` comments.
pub fn parse_line(line: &str) -> Result<Option<HexFrame>, HexLineError> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let first = parts.next().unwrap_or_default();
    let (time, frame) = match parts.next() {
        Some(second) => {
            let t: f64 = first
                .parse()
                .map_err(|_| HexLineError::BadTime(first.to_owned()))?;
            if !t.is_finite() {
                return Err(HexLineError::BadTime(first.to_owned()));
            }
            (Some(t), second)
        }
        None => (None, first),
    };
    let hex = frame.trim_start_matches(['*', '@']).trim_end_matches(';');
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(HexLineError::NotHex(frame.to_owned()));
    }
    if hex.len() != 14 && hex.len() != 28 {
        return Err(HexLineError::BadLength(hex.len()));
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&hex[i..i + 2], 16)
                .map_err(|_| HexLineError::NotHex(frame.to_owned()))
        })
        .collect::<Result<Vec<u8>, _>>()?;
    Ok(Some((time, bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let f = parse_line("*8D4840D6202CC371C32CE0576098;")
            .unwrap()
            .unwrap();
        assert_eq!(f.0, None);
        assert_eq!(f.1[0], 0x8D);
        let f = parse_line("12.5 8D4840D6202CC371C32CE0576098")
            .unwrap()
            .unwrap();
        assert_eq!(f.0, Some(12.5));
        assert_eq!(parse_line("  # note").unwrap(), None);
        assert_eq!(parse_line("").unwrap(), None);
        assert!(matches!(
            parse_line("*8D48;"),
            Err(HexLineError::BadLength(4))
        ));
        assert!(matches!(parse_line("xyz"), Err(HexLineError::NotHex(_))));
        assert!(matches!(
            parse_line("nan 8D4840D6202CC371C32CE0576098"),
            Err(HexLineError::BadTime(_))
        ));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC*") {
            let _ = parse_line(&s);
        }
    }
}
