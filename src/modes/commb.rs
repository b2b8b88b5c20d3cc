//! Comm-B (MB field) register inference and decoding (being written).
