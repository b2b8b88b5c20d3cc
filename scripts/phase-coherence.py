#!/usr/bin/env python3
"""How steady is a transponder's carrier phase across one reply?

For issue 17's next step (cancelling a stronger reply in the IQ domain
to read a weaker one under it), which works only if a reply's carrier
keeps its phase from pulse to pulse. For each frame the decoder finds
in a 2.4 MS/s cu8 recording: the start is refined to a tenth of a
sample (pulse slots minus empty slots), the IQ phase is read at every
pulse's centre, a line (carrier offset and phase; with `--quadratic`
also a drift) is fitted over the reply, and the spread of what is left
is printed, with the noise-only expectation next to it.

Usage: scripts/phase-coherence.py FILE.cu8 [--quadratic]
Needs numpy and a release build (`cargo build --release`).
"""
import json
import subprocess
import sys

import numpy as np

FS = 2.4e6


def main():
    path = sys.argv[1]
    quadratic = "--quadratic" in sys.argv[2:]
    raw = np.fromfile(path, dtype=np.uint8).astype(np.float32) - 127.4
    iq = raw[0::2] + 1j * raw[1::2]
    grid = np.arange(len(iq))
    mag = np.abs(iq)
    # Noise: the median magnitude of complex Gaussian noise is sigma*sqrt(2 ln 2)
    # per component pair; most samples are noise.
    sigma = np.median(mag) / np.sqrt(2 * np.log(2))
    out = subprocess.run(
        ["./target/release/adsb-kinesis", "decode", "--output", "json", path],
        capture_output=True, text=True, check=True,
    ).stdout
    spreads, offsets, amps = [], [], []
    for line in out.splitlines():
        frame = json.loads(line)
        b = bytes.fromhex(frame["hex"])
        bits = [(b[k // 8] >> (7 - k % 8)) & 1 for k in range(len(b) * 8)]
        # Pulse starts in microseconds: preamble, then one half of each bit.
        on = np.array([0, 1, 3.5, 4.5] + [8 + k + (0 if x else 0.5) for k, x in enumerate(bits)])
        off = np.array([8 + k + (0.5 if x else 0) for k, x in enumerate(bits)])
        t0 = frame["t"] * FS
        best = None
        for s in np.arange(t0 - 4, t0 + 4, 0.1):
            c_on = s + (on + 0.25) * FS / 1e6
            c_off = s + (off + 0.25) * FS / 1e6
            if s < 0 or c_on.max() + 2 >= len(iq):
                continue
            score = np.interp(c_on, grid, mag).sum() - np.interp(c_off, grid, mag).sum()
            if best is None or score > best[0]:
                best = (score, s)
        if best is None:
            continue
        centres = best[1] + (on + 0.25) * FS / 1e6
        z = np.interp(centres, grid, iq.real) + 1j * np.interp(centres, grid, iq.imag)
        phase = np.unwrap(np.angle(z))
        cols = [on, np.ones_like(on)] + ([on**2] if quadratic else [])
        a = np.vstack(cols).T
        coef = np.linalg.lstsq(a, phase, rcond=None)[0]
        spreads.append(np.degrees(np.std(phase - a @ coef)))
        offsets.append(coef[0] / (2 * np.pi) * 1e3)  # rad/us -> kHz
        amps.append(np.abs(z).mean())
    if not spreads:
        print(f"{path}: no frames")
        return
    amp = np.median(amps)
    print(
        f"{path}: {len(spreads)} replies; phase spread about the fit "
        f"median {np.median(spreads):.1f} deg, 90th percentile "
        f"{np.percentile(spreads, 90):.1f} deg; noise alone would give about "
        f"{np.degrees(sigma / amp):.1f} deg (pulse {amp:.0f}, noise sigma "
        f"{sigma:.1f}); carrier offset median {np.median(offsets):.1f} kHz"
    )


if __name__ == "__main__":
    main()
