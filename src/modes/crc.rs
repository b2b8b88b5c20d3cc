//! Mode S CRC-24, ICAO Annex 10 Vol IV §3.1.2.3.3 (generator polynomial
//! 1 1111 1111 1111 0100 0000 1001, i.e. 0x1FFF409).
//!
//! Table-driven, one byte per step: the demodulator calls this for every
//! candidate frame, so it must cost a handful of loads per byte.

const POLY: u32 = 0xFF_F409;

const fn build_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut b = 0;
    while b < 256 {
        let mut c = (b as u32) << 16;
        let mut i = 0;
        while i < 8 {
            c = if c & 0x80_0000 != 0 {
                (c << 1) ^ POLY
            } else {
                c << 1
            };
            i += 1;
        }
        table[b] = c & 0xFF_FFFF;
        b += 1;
    }
    table
}

static TABLE: [u32; 256] = build_table();

/// CRC-24 remainder of `data` (no final XOR), as the parity generator of
/// Annex 10 §3.1.2.3.3.1 computes it over the first N-24 bits.
#[inline]
pub fn checksum(data: &[u8]) -> u32 {
    let mut crc = 0u32;
    for &byte in data {
        let idx = ((crc >> 16) as u8 ^ byte) as usize;
        crc = ((crc << 8) ^ TABLE[idx]) & 0xFF_FFFF;
    }
    crc
}

/// Residue of a whole frame: CRC of everything but the last 24 bits, XOR the
/// last 24 bits (the AP or PI field). Zero for a valid DF11 (II=0)/17/18;
/// the aircraft address for DF0/4/5/16/20/21; the interrogator identifier
/// for DF11 with non-zero II/SI.
///
/// Returns 0 for frames shorter than 4 bytes (nothing to check), which callers
/// never pass: frames are always 7 or 14 bytes.
#[inline]
pub fn residue(frame: &[u8]) -> u32 {
    let n = frame.len();
    if n < 4 {
        return 0;
    }
    let parity =
        (u32::from(frame[n - 3]) << 16) | (u32::from(frame[n - 2]) << 8) | u32::from(frame[n - 1]);
    checksum(&frame[..n - 3]) ^ parity
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    // Bit-at-a-time long division, written straight from the Annex 10
    // description, to check the table-driven version against.
    fn slow(data: &[u8]) -> u32 {
        let mut crc = 0u32;
        for &byte in data {
            for bit in (0..8).rev() {
                let inbit = u32::from((byte >> bit) & 1);
                let top = (crc >> 23) & 1;
                crc = (crc << 1) & 0xFF_FFFF;
                if top ^ inbit != 0 {
                    crc ^= POLY;
                }
            }
        }
        crc
    }

    // Known-answer frames from shared/testdata/modes_vectors.json
    // (category crc_residue; originally rs1090 crc.rs / pyModeS tests).
    #[test]
    fn known_residues() {
        assert_eq!(residue(&hex("8D8960ED58BF053CF11BC5932B7D")), 0);
        assert_eq!(residue(&hex("8D49D3D4E1089D00000000744C3B")), 0);
        assert_eq!(residue(&hex("C80B2DCA34AA21DD821A04CB64D4")), 10719924);
        assert_eq!(residue(&hex("A8000614A50B6D32BED000BBE0ED")), 5659991);
        assert_eq!(residue(&hex("A0000410BC900010A40000F5F477")), 11727682);
        assert_eq!(checksum(&hex("8D406B902015A678D4D220")), 11160538);
    }

    proptest::proptest! {
        #[test]
        fn table_matches_bitwise(data in proptest::collection::vec(proptest::num::u8::ANY, 0..32)) {
            proptest::prop_assert_eq!(checksum(&data), slow(&data));
        }

        // A CRC is linear: the residue of a frame with one flipped bit is the
        // residue of the clean frame XOR the syndrome of that bit alone. The
        // error-correction tables depend on this.
        #[test]
        fn residue_is_linear(data in proptest::collection::vec(proptest::num::u8::ANY, 14), bit in 0usize..112) {
            let mut flipped = data.clone();
            flipped[bit / 8] ^= 0x80 >> (bit % 8);
            let mut single = vec![0u8; 14];
            single[bit / 8] ^= 0x80 >> (bit % 8);
            proptest::prop_assert_eq!(residue(&flipped), residue(&data) ^ residue(&single));
        }
    }
}
