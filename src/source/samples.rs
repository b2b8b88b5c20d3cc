//! IQ sources behind one blocking `read`: the simulator, a file, a dongle,
//! an rtl_tcp server. The daemon's sdr thread calls it with recycled
//! buffers; nothing here runs in async code.

use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::{rtlsdr, rtltcp, ReplaySpeed, SourceSpec, SourceTelemetry, Tuning, MODE_S_HZ};
use crate::config::RunConfig;
use crate::iq::SampleFormat;
use crate::sim::{SimConfigError, Simulator};

/// Why an IQ source cannot be opened or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SamplesError {
    /// The recording cannot be opened.
    #[error("cannot open {}: {error}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        error: io::Error,
    },
    /// Reading the recording failed.
    #[error("reading {}: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: io::Error,
    },
    /// The simulated sky's settings do not work.
    #[error("{}: {}", .0.field(), .0)]
    Sim(#[from] SimConfigError),
}

/// Where IQ bytes come from.
pub enum Samples {
    /// The built-in simulated sky.
    Sim(Box<Simulator>),
    /// A recording.
    File {
        /// The open file; a FIFO is opened at the first read, on the sdr
        /// thread, because opening one waits for a writer and must not
        /// hold up the start or a shutdown.
        file: Option<File>,
        /// Its path, for errors.
        path: PathBuf,
    },
    /// A dongle; returns 0 only when cancelled, reconnects by itself.
    Rtl(Box<rtlsdr::Dongle>),
    /// An rtl_tcp server; returns 0 only when cancelled, reconnects by itself.
    RtlTcp(Box<rtltcp::RtlTcp>),
}

/// An opened IQ source and how the pipeline must treat it.
pub struct IqInput {
    /// The reader.
    pub samples: Samples,
    /// Its sample format.
    pub format: SampleFormat,
    /// Released no faster than the sample rate (the simulator, a file
    /// replayed in real time).
    pub paced: bool,
    /// A radio, or what stands for one: it cannot wait, so full queues
    /// drop and count instead of pushing back.
    pub live: bool,
}

impl Samples {
    /// Opens the IQ source of `config`; `None` for frame and line sources
    /// (Beast, SBS), which are tasks on sockets instead.
    pub fn open(
        config: &RunConfig,
        token: &CancellationToken,
        tel: &Arc<SourceTelemetry>,
    ) -> Result<Option<IqInput>, SamplesError> {
        let src = &config.source;
        let tuning = Tuning {
            freq_hz: MODE_S_HZ,
            sample_rate: src.sample_rate.hz(),
            gain: src.gain,
            ppm: src.ppm,
            bias_tee: src.bias_tee,
        };
        let input = |samples, format, paced, live| {
            Ok(Some(IqInput {
                samples,
                format,
                paced,
                live,
            }))
        };
        match &src.source {
            SourceSpec::Rtlsdr(sel) => input(
                Samples::Rtl(Box::new(rtlsdr::Dongle::new(
                    sel.clone(),
                    tuning,
                    token.clone(),
                    tel.clone(),
                ))),
                SampleFormat::Cu8,
                false,
                true,
            ),
            // TCP flow control pushes back to the server, which drops as a
            // dongle would: here the pipeline may wait.
            SourceSpec::RtlTcp(addr) => input(
                Samples::RtlTcp(Box::new(rtltcp::RtlTcp::new(
                    addr.clone(),
                    tuning,
                    token.clone(),
                    tel.clone(),
                ))),
                SampleFormat::Cu8,
                false,
                false,
            ),
            SourceSpec::Beast(_) | SourceSpec::Sbs(_) => Ok(None),
            SourceSpec::Sim => input(
                Samples::Sim(Box::new(Simulator::try_new(config.sim_config())?)),
                SampleFormat::Cu8,
                true,
                true,
            ),
            SourceSpec::File(path) => {
                let open_err = |error| SamplesError::Open {
                    path: path.clone(),
                    error,
                };
                use std::os::unix::fs::FileTypeExt;
                let kind = std::fs::metadata(path).map_err(open_err)?.file_type();
                if kind.is_dir() {
                    return Err(open_err(io::Error::other("is a directory")));
                }
                let file = if kind.is_fifo() {
                    None
                } else {
                    Some(File::open(path).map_err(open_err)?)
                };
                let paced = src.replay_speed == ReplaySpeed::Realtime;
                input(
                    Samples::File {
                        file,
                        path: path.clone(),
                    },
                    src.iformat,
                    paced,
                    paced,
                )
            }
        }
    }

    /// Fills `buf`; 0 at the end of a file, or when a live source is
    /// cancelled.
    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize, SamplesError> {
        match self {
            Samples::Sim(sim) => Ok(sim.fill(buf, &mut Vec::new())),
            Samples::Rtl(d) => Ok(d.read(buf)),
            Samples::RtlTcp(c) => Ok(c.read(buf)),
            Samples::File { file, path } => loop {
                let f = match file {
                    Some(f) => f,
                    None => {
                        file.insert(File::open(&*path).map_err(|error| SamplesError::Open {
                            path: path.clone(),
                            error,
                        })?)
                    }
                };
                match f.read(buf) {
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(error) => {
                        return Err(SamplesError::Read {
                            path: path.clone(),
                            error,
                        })
                    }
                }
            },
        }
    }
}
