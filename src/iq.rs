//! IQ sample formats and their conversion to magnitude (being written).

/// How raw IQ bytes are laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SampleFormat {
    /// Interleaved unsigned 8-bit I/Q, centre 127.5 (RTL-SDR native).
    Cu8,
    /// Interleaved signed 16-bit little-endian I/Q.
    Cs16,
}

impl SampleFormat {
    /// Bytes per complex sample.
    pub const fn bytes_per_sample(self) -> usize {
        match self {
            SampleFormat::Cu8 => 2,
            SampleFormat::Cs16 => 4,
        }
    }
}
