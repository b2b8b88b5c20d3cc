//! Field codings shared by several downlink formats: altitude (AC13 / AC12,
//! Q-bit and Gillham), identity (ID13 squawk) and the 6-bit character set.

/// Decode a 13-bit altitude code (AC field of DF0/4/16/20),
/// Annex 10 Vol IV §3.1.2.6.5.4. Bits, MSB first:
/// C1 A1 C2 A2 C4 A4 M B1 Q B2 D2 B4 D4.
///
/// Returns feet, or `None` for "not available" (all zero), metric altitudes
/// (M=1: no transponder we have seen uses them and Annex 10 leaves their
/// resolution to the installation) and illegal Gillham codes.
pub fn ac13_ft(code: u16) -> Option<i32> {
    let code = code & 0x1FFF;
    if code == 0 {
        return None;
    }
    let m = code & 0x0040 != 0;
    if m {
        return None;
    }
    let q = code & 0x0010 != 0;
    if q {
        // Remove M (bit 6 from LSB) and Q (bit 4) to get an 11-bit count of 25 ft.
        let n = ((code & 0x1F80) >> 2) | ((code & 0x0020) >> 1) | (code & 0x000F);
        return Some(i32::from(n) * 25 - 1000);
    }
    gillham_ft(code)
}

/// Decode the 12-bit altitude of an ADS-B airborne position (DO-260B
/// §2.2.3.2.3.4): the AC13 layout without the M bit.
pub fn ac12_ft(code: u16) -> Option<i32> {
    let code = code & 0x0FFF;
    // Re-insert a zero M bit at position 6 (from LSB) to reuse the AC13 decoder.
    let ac13 = ((code & 0x0FC0) << 1) | (code & 0x003F);
    ac13_ft(ac13)
}

/// Gillham (Mode C) altitude in 100 ft steps, Annex 10 Vol IV §3.1.1.7.12.2.3
/// (the pulse assignments of Table 3-1 / Vol IV Appendix to Chapter 3).
///
/// The D2 D4 A1 A2 A4 B1 B2 B4 bits are a reflected Gray code counting 500 ft
/// steps; C1 C2 C4 are a five-state Gray-like code counting 100 ft steps whose
/// direction reverses on every odd 500 ft step.
pub fn gillham_ft(ac13: u16) -> Option<i32> {
    let bit = |pos_from_msb: u32| (ac13 >> (13 - pos_from_msb)) & 1;
    let (c1, a1, c2, a2, c4, a4) = (bit(1), bit(2), bit(3), bit(4), bit(5), bit(6));
    let (b1, b2, d2, b4, d4) = (bit(8), bit(10), bit(11), bit(12), bit(13));

    let gray500 =
        (d2 << 7) | (d4 << 6) | (a1 << 5) | (a2 << 4) | (a4 << 3) | (b1 << 2) | (b2 << 1) | b4;
    let n500 = gray_to_binary(gray500) as i32;

    let n100 = match gray_to_binary((c1 << 2) | (c2 << 1) | c4) {
        // 000 and 111 never occur in the C-pulse sequence.
        0 | 5 => return None,
        7 => 5,
        n => n as i32,
    };
    let n100 = if n500 % 2 == 1 { 6 - n100 } else { n100 };
    Some(n500 * 500 + n100 * 100 - 1300)
}

fn gray_to_binary(mut g: u16) -> u16 {
    let mut b = g;
    while g > 0 {
        g >>= 1;
        b ^= g;
    }
    b
}

/// Decode a 13-bit identity code (ID field of DF5/21, ADS-B TC 28) into the
/// four octal squawk digits, Annex 10 Vol IV §3.1.2.6.7.1. Bits, MSB first:
/// C1 A1 C2 A2 C4 A4 X B1 D1 B2 D2 B4 D4.
pub fn id13_squawk(code: u16) -> u16 {
    let bit = |pos_from_msb: u32| (code >> (13 - pos_from_msb)) & 1;
    let a = (bit(6) << 2) | (bit(4) << 1) | bit(2);
    let b = (bit(12) << 2) | (bit(10) << 1) | bit(8);
    let c = (bit(5) << 2) | (bit(3) << 1) | bit(1);
    let d = (bit(13) << 2) | (bit(11) << 1) | bit(9);
    (a << 9) | (b << 6) | (c << 3) | d
}

/// A squawk as its four octal digits, zero padded ("0112", "7700").
pub fn squawk_string(sq: u16) -> String {
    format!("{:04o}", sq & 0o7777)
}

/// The 6-bit character subset of IA-5 used for aircraft identification,
/// Annex 10 Vol IV Table 3-9. `None` marks codes that are not characters.
const CHARSET: &[u8; 64] = b"#ABCDEFGHIJKLMNOPQRSTUVWXYZ##### ###############0123456789######";

/// Decode eight 6-bit characters packed into the low 48 bits of `bits`.
/// Returns the characters with trailing spaces kept (SBS wants 8 columns),
/// or `None` if any code is not a valid character.
pub fn callsign(bits: u64) -> Option<[u8; 8]> {
    let mut out = [b' '; 8];
    for (i, slot) in out.iter_mut().enumerate() {
        let code = ((bits >> (42 - 6 * i)) & 0x3F) as usize;
        let c = CHARSET[code];
        if c == b'#' {
            return None;
        }
        *slot = c;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Encode by the Annex 10 pulse table, independently of the decoder's
    // Gray-code arithmetic: walk the published C-pulse sequence and 500 ft
    // Gray code forwards from -1200 ft.
    fn gillham_encode(alt: i32) -> u16 {
        let steps = (alt + 1200) / 100; // 0-based 100 ft index from -1200
        let n500 = (steps / 5) as u16;
        let mut n100 = (steps % 5) as u16 + 1;
        if n500 % 2 == 1 {
            n100 = 6 - n100;
        }
        let g500 = n500 ^ (n500 >> 1);
        let c = [0, 0b001, 0b011, 0b010, 0b110, 0b100][n100 as usize];
        let (c1, c2, c4) = ((c >> 2) & 1, (c >> 1) & 1, c & 1);
        let b = |k: u16| (g500 >> k) & 1;
        let (d2, d4, a1, a2, a4, b1, b2, b4) = (b(7), b(6), b(5), b(4), b(3), b(2), b(1), b(0));
        (c1 << 12)
            | (a1 << 11)
            | (c2 << 10)
            | (a2 << 9)
            | (c4 << 8)
            | (a4 << 7)
            | (b1 << 5)
            | (b2 << 3)
            | (d2 << 2)
            | (b4 << 1)
            | d4
    }

    #[test]
    fn gillham_round_trip_every_100ft() {
        for alt in (-1200..=126_700).step_by(100) {
            let code = gillham_encode(alt);
            assert_eq!(ac13_ft(code), Some(alt), "alt {alt} code {code:013b}");
        }
    }

    // Known answers from shared/testdata/modes_vectors.json pin the Q=1 path.
    #[test]
    fn q_bit_altitudes() {
        // 36000 ft from vector df4-alt-36000 (frame 20001718029FCD, AC=0x1718)
        assert_eq!(ac13_ft(0x1718 & 0x1FFF), Some(36000));
        // AC12 of 8D40058B58C901375147EFD09357 (alt-39000): ME bits 9..20 = 0xC90
        assert_eq!(ac12_ft(0xC90), Some(39000));
    }

    #[test]
    fn squawk_digits() {
        // 2A00516D492B80 (vector df5-sqk-0356): ID = low 13 bits of the first 32.
        let id = (0x2A00_516D_u32 & 0x1FFF) as u16;
        assert_eq!(squawk_string(id13_squawk(id)), "0356");
    }

    #[test]
    fn callsign_chars() {
        // "KLM1017 " from vector commb-bds20-klm1017, MB = 202CC371C31DE0 (first byte is BDS 2,0)
        let mb: u64 = 0x20_2CC3_71C3_1DE0;
        assert_eq!(&callsign(mb & 0xFFFF_FFFF_FFFF).unwrap(), b"KLM1017 ");
        assert_eq!(callsign(0), None);
    }
}
