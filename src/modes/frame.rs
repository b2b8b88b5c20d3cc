//! The Mode S frame parser: downlink format, fixed fields and the
//! address/parity check, ICAO Annex 10 Vol IV §3.1.2.
//!
//! Built with `nom` bit parsers, kept private behind [`parse`]: callers see
//! a [`Frame`] or a [`DecodeError`], never nom's types.

use nom::bits::complete::take;
use nom::IResult;

use super::adsb::{self, Me};
use super::commb::{self, CommB};
use super::{crc, fields, Icao};

/// Why a byte sequence is not a Mode S frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Not 7 or 14 bytes long.
    #[error("frame of {len} bytes: Mode S frames are 7 or 14 bytes")]
    BadLength {
        /// The length given, bytes.
        len: usize,
    },
    /// The downlink format's length differs from the frame's.
    #[error("DF{df} is a {expected}-bit format but the frame has {got} bits")]
    LengthMismatch {
        /// The downlink format of the first five bits.
        df: u8,
        /// Bits that format has.
        expected: usize,
        /// Bits the frame has.
        got: usize,
    },
}

/// Flight status (FS) of DF4/5/20/21, Annex 10 Vol IV §3.1.2.6.5.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlightStatus(pub u8);

impl FlightStatus {
    /// Alert (Mode A code changed): FS 2, 3, 4. `None` for FS 6/7.
    pub fn alert(self) -> Option<bool> {
        match self.0 {
            0 | 1 | 5 => Some(false),
            2..=4 => Some(true),
            _ => None,
        }
    }
    /// SPI (ident) on: FS 4, 5. `None` for FS 6/7.
    pub fn spi(self) -> Option<bool> {
        match self.0 {
            0..=3 => Some(false),
            4 | 5 => Some(true),
            _ => None,
        }
    }
    /// On ground: FS 1, 3 say so; 0 and 2 say airborne; the rest don't tell.
    pub fn on_ground(self) -> Option<bool> {
        match self.0 {
            1 | 3 => Some(true),
            0 | 2 => Some(false),
            _ => None,
        }
    }
}

/// The format-specific content of a frame.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Body {
    /// DF0 short air-air surveillance (ACAS), §3.1.2.8.2.
    ShortAcas {
        /// Vertical status: 1 on the ground.
        vs: u8,
        /// Altitude code (AC), feet.
        altitude_ft: Option<i32>,
    },
    /// DF4 surveillance altitude reply, §3.1.2.6.5.
    SurvAltitude {
        /// Flight status: alert, SPI, airborne or on the ground.
        fs: FlightStatus,
        /// Downlink request, §3.1.2.6.5.2.
        dr: u8,
        /// Altitude code (AC), feet.
        altitude_ft: Option<i32>,
    },
    /// DF5 surveillance identity reply, §3.1.2.6.7.
    SurvIdentity {
        /// Flight status: alert, SPI, airborne or on the ground.
        fs: FlightStatus,
        /// Downlink request, §3.1.2.6.5.2.
        dr: u8,
        /// Identity code (ID): Mode A, four octal digits read as decimal.
        squawk: u16,
    },
    /// DF11 all-call reply, §3.1.2.5.2.2. `ic` is the low 7 bits of the
    /// residue: code label and interrogator code (0 = spontaneous squitter
    /// or II=0).
    AllCall {
        /// Transponder capability, §3.1.2.5.2.2.1.
        ca: u8,
        /// Interrogator code recovered from the parity.
        ic: u8,
    },
    /// DF16 long air-air surveillance (ACAS), §3.1.2.8.3.
    LongAcas {
        /// Vertical status: 1 on the ground.
        vs: u8,
        /// Altitude code (AC), feet.
        altitude_ft: Option<i32>,
    },
    /// DF17 extended squitter (CA) / DF18 non-transponder ES (CF), DO-260B §2.2.3.
    ExtendedSquitter {
        /// CA (DF17) or CF (DF18) field, the three bits after the DF.
        ca: u8,
        /// The decoded ME field.
        me: Me,
    },
    /// DF20 Comm-B altitude reply, §3.1.2.6.6.
    CommBAltitude {
        /// Flight status: alert, SPI, airborne or on the ground.
        fs: FlightStatus,
        /// Downlink request, §3.1.2.6.5.2.
        dr: u8,
        /// Altitude code (AC), feet.
        altitude_ft: Option<i32>,
        /// The MB field and what it may carry.
        commb: CommB,
    },
    /// DF21 Comm-B identity reply, §3.1.2.6.8.
    CommBIdentity {
        /// Flight status: alert, SPI, airborne or on the ground.
        fs: FlightStatus,
        /// Downlink request, §3.1.2.6.5.2.
        dr: u8,
        /// Identity code (ID): Mode A, four octal digits read as decimal.
        squawk: u16,
        /// The MB field and what it may carry.
        commb: CommB,
    },
    /// DF19 (military), DF24 (Comm-D) and reserved formats: header only.
    Other,
}

/// A parsed Mode S frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// Downlink format, the first five bits (Annex 10 Vol IV §3.1.2.3.2.1.2); 24 for any frame
    /// starting with binary 11.
    pub df: u8,
    bytes: [u8; 14],
    len: usize,
    /// CRC-24 over the whole frame, parity field included.
    pub residue: u32,
    /// AA field for DF11/17/18, otherwise the address recovered from AP
    /// (the residue) — which is only an aircraft's address if the frame is
    /// error-free.
    pub icao: Icao,
    /// The format's fields.
    pub body: Body,
}

impl Frame {
    /// The frame as received, 7 or 14 bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// Parity check result for formats with a PI field (DF11/17/18):
    /// DF11 tolerates an interrogator code in the low 7 bits.
    /// `None` for address/parity formats, which cannot be checked alone.
    pub fn crc_ok(&self) -> Option<bool> {
        match self.df {
            11 => Some(self.residue & !0x7F == 0),
            17 | 18 => Some(self.residue == 0),
            _ => None,
        }
    }

    /// The PI/AP field as transmitted (last 24 bits).
    pub fn parity(&self) -> u32 {
        let b = self.bytes();
        let n = b.len();
        (u32::from(b[n - 3]) << 16) | (u32::from(b[n - 2]) << 8) | u32::from(b[n - 1])
    }

    /// The utility message (UM, bits 14-19) of DF4/5/20/21 as (IIS, IDS),
    /// Annex 10 Vol IV §3.1.2.6.5.3: the interrogator identifier (4 bits)
    /// of the reservation this reply reports, and its type (2 bits: 0 none,
    /// 1 Comm-B, 2 Comm-C, 3 Comm-D).
    pub fn um(&self) -> Option<(u8, u8)> {
        if !matches!(self.df, 4 | 5 | 20 | 21) {
            return None;
        }
        let um = ((self.bytes[1] & 0x07) << 3) | (self.bytes[2] >> 5);
        Some((um >> 2, um & 3))
    }

    /// DF18 control field, which says what kind of address AA is.
    pub fn cf(&self) -> Option<u8> {
        (self.df == 18).then(|| self.bytes[0] & 7)
    }

    /// Whether AA is an ICAO 24-bit address. False for DF18 CF values that
    /// carry anonymous / non-ICAO addresses (DO-260B §2.2.3.1.2, Table 2-11:
    /// CF=1, CF=3, CF=5 with IMF, and reserved codes); SBS never shows those.
    pub fn address_is_icao(&self) -> bool {
        match self.cf() {
            None => true,
            Some(cf) => matches!(cf, 0 | 2 | 6),
        }
    }

    /// Mode S altitude carried by this frame, if any.
    pub fn altitude_ft(&self) -> Option<i32> {
        match &self.body {
            Body::ShortAcas { altitude_ft, .. }
            | Body::SurvAltitude { altitude_ft, .. }
            | Body::LongAcas { altitude_ft, .. }
            | Body::CommBAltitude { altitude_ft, .. } => *altitude_ft,
            Body::ExtendedSquitter {
                me:
                    Me::AirbornePosition {
                        altitude_ft,
                        gnss: false,
                        ..
                    },
                ..
            } => *altitude_ft,
            _ => None,
        }
    }
}

/// Number of bits of a downlink format, Annex 10 Vol IV §3.1.2.3.1.
pub const fn df_bits(df: u8) -> usize {
    if df < 16 {
        56
    } else {
        112
    }
}

/// The downlink format of a frame's first byte; DF24 is coded "11" in the
/// first two bits whatever follows (§3.1.2.3.2.1.2).
#[inline]
pub const fn df_of(first: u8) -> u8 {
    let df = first >> 3;
    if df >= 24 {
        24
    } else {
        df
    }
}

type Bits<'a> = (&'a [u8], usize);

fn field(input: Bits<'_>, n: usize) -> IResult<Bits<'_>, u64> {
    take(n)(input)
}

/// Parse one frame (7 or 14 bytes). Never panics on any input.
pub fn parse(bytes: &[u8]) -> Result<Frame, DecodeError> {
    if bytes.len() != 7 && bytes.len() != 14 {
        return Err(DecodeError::BadLength { len: bytes.len() });
    }
    let df = df_of(bytes[0]);
    let expected = df_bits(df);
    if expected != bytes.len() * 8 {
        return Err(DecodeError::LengthMismatch {
            df,
            expected,
            got: bytes.len() * 8,
        });
    }
    let mut buf = [0u8; 14];
    buf[..bytes.len()].copy_from_slice(bytes);
    let residue = crc::residue(bytes);
    // Fixed-length fields on a buffer whose length we checked: the bit
    // parsers cannot run out of input, so an error here would be a bug in
    // the layouts below. Report it as a length problem rather than panic.
    let (_, (aa, body)) =
        body(df, residue, (bytes, 0)).map_err(|_| DecodeError::BadLength { len: bytes.len() })?;
    let icao = Icao(aa.unwrap_or(residue));
    Ok(Frame {
        df,
        bytes: buf,
        len: bytes.len(),
        residue,
        icao,
        body,
    })
}

/// Returns the AA field (for formats that carry one) and the body.
fn body(df: u8, residue: u32, i: Bits<'_>) -> IResult<Bits<'_>, (Option<u32>, Body)> {
    let (i, _df) = field(i, 5)?;
    match df {
        0 => {
            let (i, vs) = field(i, 1)?;
            let (i, _cc_sl_ri) = field(i, 13)?;
            let (i, ac) = field(i, 13)?;
            Ok((
                i,
                (
                    None,
                    Body::ShortAcas {
                        vs: vs as u8,
                        altitude_ft: fields::ac13_ft(ac as u16),
                    },
                ),
            ))
        }
        4 | 5 | 20 | 21 => {
            let (i, fs) = field(i, 3)?;
            let (i, dr) = field(i, 5)?;
            let (i, _um) = field(i, 6)?;
            let (i, code) = field(i, 13)?;
            let fs = FlightStatus(fs as u8);
            let dr = dr as u8;
            let code = code as u16;
            let (i, mb) = if df >= 20 { field(i, 56)? } else { (i, 0) };
            let body = match df {
                4 => Body::SurvAltitude {
                    fs,
                    dr,
                    altitude_ft: fields::ac13_ft(code),
                },
                5 => Body::SurvIdentity {
                    fs,
                    dr,
                    squawk: fields::id13_squawk(code),
                },
                20 => {
                    let altitude_ft = fields::ac13_ft(code);
                    Body::CommBAltitude {
                        fs,
                        dr,
                        altitude_ft,
                        commb: commb::decode(mb, altitude_ft),
                    }
                }
                _ => Body::CommBIdentity {
                    fs,
                    dr,
                    squawk: fields::id13_squawk(code),
                    commb: commb::decode(mb, None),
                },
            };
            Ok((i, (None, body)))
        }
        11 | 17 | 18 => {
            let (i, ca) = field(i, 3)?;
            let (i, aa) = field(i, 24)?;
            if df == 11 {
                let (i, _pi) = field(i, 24)?;
                let ic = (residue & 0x7F) as u8;
                return Ok((i, (Some(aa as u32), Body::AllCall { ca: ca as u8, ic })));
            }
            let (i, me) = field(i, 56)?;
            Ok((
                i,
                (
                    Some(aa as u32),
                    Body::ExtendedSquitter {
                        ca: ca as u8,
                        me: adsb::decode_me(me),
                    },
                ),
            ))
        }
        16 => {
            let (i, vs) = field(i, 1)?;
            let (i, _sl_ri) = field(i, 13)?;
            let (i, ac) = field(i, 13)?;
            Ok((
                i,
                (
                    None,
                    Body::LongAcas {
                        vs: vs as u8,
                        altitude_ft: fields::ac13_ft(ac as u16),
                    },
                ),
            ))
        }
        _ => Ok((i, (None, Body::Other))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        // No byte sequence makes the parser panic; lengths other than 7/14
        // and formats of the wrong length are errors, not frames.
        #[test]
        fn any_bytes_parse_or_error(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..20)) {
            match parse(&bytes) {
                Ok(f) => {
                    assert_eq!(f.bytes(), &bytes[..]);
                    assert_eq!(df_bits(f.df), bytes.len() * 8);
                }
                Err(DecodeError::BadLength { len }) => assert!(len != 7 && len != 14),
                Err(DecodeError::LengthMismatch { df, .. }) => assert_ne!(df_bits(df), bytes.len() * 8),
            }
        }

        // Every 112-bit frame whose first 5 bits say DF17 decodes its ME.
        #[test]
        fn any_df17_decodes(rest in proptest::collection::vec(proptest::num::u8::ANY, 13)) {
            let mut b = vec![0x8D];
            b.extend(rest);
            let f = parse(&b).unwrap();
            assert!(matches!(f.body, Body::ExtendedSquitter { .. }));
        }
    }

    #[test]
    fn um_is_bits_14_to_19_split_into_iis_and_ids() {
        // DF4, FS 0, DR 0, UM 010101: IIS 5, IDS 1 (Comm-B). The fields
        // around it set to ones to show they do not leak in.
        let f = parse(&[0x20, 0b1111_1010, 0b1011_1111, 0xFF, 0, 0, 0]).unwrap();
        assert_eq!(f.df, 4);
        assert_eq!(f.um(), Some((5, 1)));
        let f = parse(&[0x20, 0b0000_0111, 0b1110_0000, 0, 0, 0, 0]).unwrap();
        assert_eq!(f.um(), Some((15, 3)));
        // Formats without a UM field.
        assert_eq!(parse(&[0x58, 0, 0, 0, 0, 0, 0]).unwrap().um(), None);
    }

    #[test]
    fn length_errors_name_the_problem() {
        assert_eq!(parse(&[0x8D; 3]), Err(DecodeError::BadLength { len: 3 }));
        assert_eq!(
            parse(&[0x8D; 7]),
            Err(DecodeError::LengthMismatch {
                df: 17,
                expected: 112,
                got: 56
            })
        );
    }
}
