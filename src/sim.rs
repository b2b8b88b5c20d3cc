//! Mode S signal synthesizer (being written).
