//! Compact Position Reporting, DO-260B §A.1.7 (being written).

/// Encode a position into 17-bit airborne CPR (lat, lon) for the even
/// (`odd == false`) or odd format, DO-260B §A.1.7.3.
pub fn encode_airborne(lat: f64, lon: f64, odd: bool) -> (u32, u32) {
    let _ = (lat, lon, odd);
    unimplemented!("being written")
}
