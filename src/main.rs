//! The `adsb-kinesis` command: clap arguments -> library calls.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};

use adsb_kinesis::decoder::IqDecoder;
use adsb_kinesis::demod::Rate;
use adsb_kinesis::hexin;
use adsb_kinesis::iq::SampleFormat;
use adsb_kinesis::json::frame_json;
use adsb_kinesis::modes::accept::Received;
use adsb_kinesis::modes::{self, Frame};
use adsb_kinesis::sbs::SbsLine;
use adsb_kinesis::track::Tracker;

#[derive(Parser)]
#[command(
    name = "adsb-kinesis",
    version,
    about = "1090 MHz Mode S / ADS-B receiver feeding Amazon Kinesis"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Decode a recording (or hex frames) and print SBS, AVR or JSON to stdout.
    Decode(DecodeArgs),
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum InputFormat {
    Cu8,
    Cs16,
    Hex,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum OutputFormat {
    Sbs,
    Avr,
    Json,
}

#[derive(Args)]
struct DecodeArgs {
    /// Input file, or - for standard input.
    input: PathBuf,
    /// Input format: cu8 (unsigned 8-bit I/Q), cs16 (signed 16-bit LE I/Q) or hex frames.
    #[arg(long, value_enum, default_value = "cu8")]
    iformat: InputFormat,
    /// Sample rate of IQ input: 2000000 or 2400000 (also 2.0M, 2.4M).
    #[arg(long, default_value = "2400000", value_parser = parse_rate)]
    sample_rate: u32,
    /// Output: sbs (BaseStation lines), avr (*HEX;) or json (one object per frame).
    #[arg(long, value_enum, default_value = "sbs")]
    output: OutputFormat,
    /// Receiver latitude, degrees (for local and surface CPR decoding).
    #[arg(long, allow_hyphen_values = true, value_parser = parse_lat)]
    lat: Option<f64>,
    /// Receiver longitude, degrees.
    #[arg(long, allow_hyphen_values = true, value_parser = parse_lon)]
    lon: Option<f64>,
    /// Bits of error repair for DF11/17/18: 0, 1 (default) or 2.
    #[arg(long, default_value = "1", value_parser = clap::value_parser!(u8).range(0..=2))]
    fix: u8,
}

fn parse_rate(s: &str) -> Result<u32, String> {
    let t = s.trim();
    let hz = if let Some(m) = t.strip_suffix(['M', 'm']) {
        m.parse::<f64>().ok().map(|v| (v * 1e6).round())
    } else {
        t.parse::<f64>().ok()
    };
    match hz {
        Some(v) if v == 2_000_000.0 || v == 2_400_000.0 => Ok(v as u32),
        _ => Err(format!(
            "unsupported sample rate {s:?}: use 2000000 or 2400000 (2.0M / 2.4M)"
        )),
    }
}

fn parse_deg(s: &str, max: f64) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v.abs() <= max => Ok(v),
        _ => Err(format!("{s:?} is not a number of degrees within ±{max}")),
    }
}
fn parse_lat(s: &str) -> Result<f64, String> {
    parse_deg(s, 90.0)
}
fn parse_lon(s: &str) -> Result<f64, String> {
    parse_deg(s, 180.0)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// CPU time (user + system) of this process, seconds.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the struct we pass and nothing else.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Everything after demodulation: parse, track, format, count.
struct Printer<W: Write> {
    out: W,
    format: OutputFormat,
    tracker: Tracker,
    start_ms: i64,
    frames_by_df: [u64; 25],
    undecodable: u64,
    repaired: u64,
    late: u64,
}

impl<W: Write> Printer<W> {
    fn frame(&mut self, frame: &Frame, t: f64, rx: Option<&Received>) -> io::Result<()> {
        self.frames_by_df[usize::from(frame.df.min(24))] += 1;
        if let Some(r) = rx {
            self.repaired += u64::from(r.repaired > 0);
            self.late += u64::from(r.late);
        }
        let position = self.tracker.update(frame, t);
        match self.format {
            OutputFormat::Avr => {
                let hex: String = frame.bytes().iter().map(|b| format!("{b:02X}")).collect();
                writeln!(self.out, "*{hex};")
            }
            OutputFormat::Json => {
                let mut m = frame_json(frame, Some(t), position);
                if let Some(r) = rx {
                    m.insert("signal".into(), r.signal.into());
                    if r.repaired > 0 {
                        m.insert("repaired_bits".into(), r.repaired.into());
                    }
                    if r.late {
                        m.insert("late".into(), true.into());
                    }
                }
                writeln!(self.out, "{}", serde_json::Value::Object(m))
            }
            OutputFormat::Sbs => {
                let generated = if t > 1e9 {
                    (t * 1000.0) as i64
                } else {
                    self.start_ms + (t * 1000.0) as i64
                };
                match SbsLine::from_frame(frame, position, generated, now_ms()) {
                    Some(line) => write!(self.out, "{line}\r\n"),
                    None => Ok(()),
                }
            }
        }
    }
}

fn decode(args: DecodeArgs) -> Result<()> {
    let receiver = match (args.lat, args.lon) {
        (Some(a), Some(b)) => Some((a, b)),
        (None, None) => None,
        _ => bail!("--lat and --lon go together"),
    };
    let input: Box<dyn Read> = if args.input.as_os_str() == "-" {
        Box::new(io::stdin().lock())
    } else {
        let f = File::open(&args.input)
            .with_context(|| format!("cannot open {}", args.input.display()))?;
        if f.metadata().map(|m| m.is_dir()).unwrap_or(false) {
            bail!("{} is a directory", args.input.display());
        }
        Box::new(f)
    };
    let stdout = io::stdout();
    let mut p = Printer {
        out: BufWriter::with_capacity(64 * 1024, stdout.lock()),
        format: args.output,
        tracker: Tracker::new(receiver),
        start_ms: now_ms(),
        frames_by_df: [0; 25],
        undecodable: 0,
        repaired: 0,
        late: 0,
    };
    let mut signal_seconds = None;
    let mut io_err: Option<io::Error> = None;
    match args.iformat {
        InputFormat::Hex => {
            let mut t_last = 0.0;
            for (n, line) in BufReader::new(input).lines().enumerate() {
                let line = line.with_context(|| format!("reading {}", args.input.display()))?;
                match hexin::parse_line(&line) {
                    Ok(None) => {}
                    Ok(Some((t, bytes))) => {
                        let t = t.unwrap_or(t_last);
                        t_last = t;
                        match modes::parse(&bytes) {
                            Ok(frame) => p.frame(&frame, t, None)?,
                            Err(e) => {
                                p.undecodable += 1;
                                eprintln!("warning: line {}: {e}", n + 1);
                            }
                        }
                    }
                    Err(e) => {
                        p.undecodable += 1;
                        eprintln!("warning: line {}: {e}", n + 1);
                    }
                }
            }
        }
        InputFormat::Cu8 | InputFormat::Cs16 => {
            let fmt = if args.iformat == InputFormat::Cu8 {
                SampleFormat::Cu8
            } else {
                SampleFormat::Cs16
            };
            let rate = Rate::from_hz(args.sample_rate).context("unsupported sample rate")?;
            let mut dec = IqDecoder::new(fmt, rate, args.fix);
            let hz = f64::from(rate.hz());
            let leftover = dec
                .run(input, |r| {
                    if io_err.is_some() {
                        return;
                    }
                    // Accepted frames always parse (their length matches their DF).
                    if let Ok(frame) = modes::parse(r.bytes()) {
                        if let Err(e) = p.frame(&frame, r.sample as f64 / hz, Some(r)) {
                            io_err = Some(e);
                        }
                    }
                })
                .with_context(|| format!("reading {}", args.input.display()))?;
            if leftover > 0 {
                eprintln!("warning: input ends with {leftover} byte(s) short of a whole sample (truncated file?); decoded what was complete");
            }
            signal_seconds = Some(dec.demod().samples_seen as f64 / hz);
        }
    }
    if let Some(e) = io_err {
        return Err(e.into());
    }
    p.out.flush()?;
    let by_df: Vec<String> = p
        .frames_by_df
        .iter()
        .enumerate()
        .filter(|(_, &n)| n > 0)
        .map(|(df, n)| format!("DF{df}:{n}"))
        .collect();
    let total: u64 = p.frames_by_df.iter().sum();
    let mut summary = format!(
        "frames {total} ({}), repaired {}, late {}, aircraft {}, positions {}",
        by_df.join(" "),
        p.repaired,
        p.late,
        p.tracker.len(),
        p.tracker.stats.positions
    );
    if p.undecodable > 0 {
        summary += &format!(", bad lines {}", p.undecodable);
    }
    if let Some(s) = signal_seconds {
        let cpu = cpu_seconds();
        summary += &format!(
            ", signal {s:.3} s, cpu {cpu:.3} s ({:.3} s per s of signal)",
            if s > 0.0 { cpu / s } else { 0.0 }
        );
    }
    eprintln!("{summary}");
    Ok(())
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                return if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                    ExitCode::from(2)
                } else {
                    ExitCode::SUCCESS
                };
            }
            // One line naming the problem; clap's usage hints stay out of logs.
            let text = e.render().to_string();
            let first = text
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("invalid arguments");
            eprintln!("{first}");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Decode(a) => decode(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Closing a pipe early (| head) is not an error worth a message.
            if e.downcast_ref::<io::Error>()
                .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
