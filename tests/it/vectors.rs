//! End-to-end known-answer test: every vector of
//! `shared/testdata/modes_vectors.json` through the real binary.
//!
//! Hex vectors go through `decode --iformat hex --output json` and each key of
//! `expected` is compared against the JSON object of the (last) frame; IQ
//! vectors go through `decode --iformat cs16 --output avr` and the frames
//! found must include every frame the reference decoders agree on.
//!
//! Failures are collected over the whole file and reported together with a
//! per-category table, so one run shows everything that is wrong.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{Map, Value};

const VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/testdata/modes_vectors.json"
);
const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/testdata");
const BIN: &str = env!("CARGO_BIN_EXE_adsb-kinesis");

/// Slack for the binary representation of decimals in the file and of the
/// rounded values in our JSON.
const FLOAT_EPS: f64 = 1e-9;

/// Run the binary with `args`, feeding `stdin`; returns stdout.
fn run(args: &[String], stdin: &str) -> Result<String, String> {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {BIN}: {e}"))?;
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(stdin.as_bytes())
        .map_err(|e| format!("writing stdin: {e}"))?;
    let out = child
        .wait_with_output()
        .map_err(|e| format!("waiting: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "exit {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    String::from_utf8(out.stdout).map_err(|e| format!("stdout not UTF-8: {e}"))
}

/// The JSON objects of the binary's output, one per line.
fn json_lines(stdout: &str) -> Result<Vec<Map<String, Value>>, String> {
    stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| match serde_json::from_str::<Value>(l) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err(format!("not a JSON object: {l}")),
        })
        .collect()
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn lat_lon(m: &Map<String, Value>) -> Option<(f64, f64)> {
    Some((m.get("lat")?.as_f64()?, m.get("lon")?.as_f64()?))
}

/// Great-circle distance, km (mean Earth radius).
fn distance_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (p1, p2) = (a.0.to_radians(), b.0.to_radians());
    let dp = p2 - p1;
    let dl = (b.1 - a.1).to_radians();
    let h = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * 6371.0 * h.sqrt().asin()
}

/// Compare one expected value with what our JSON says.
fn compare(key: &str, want: &Value, got: Option<&Value>, tol: f64) -> Option<String> {
    let Some(got) = got else {
        return (!want.is_null()).then(|| format!("{key}: missing, want {want}"));
    };
    let ok = match (want, got) {
        (Value::Null, g) => g.is_null(),
        (Value::Number(w), Value::Number(g)) => {
            let (w, g) = (
                w.as_f64().unwrap_or(f64::NAN),
                g.as_f64().unwrap_or(f64::NAN),
            );
            (w - g).abs() <= tol + FLOAT_EPS
        }
        (w, g) => w == g,
    };
    (!ok).then(|| format!("{key}: got {got}, want {want}"))
}

/// Everything wrong with one JSON object against `expected`. Position keys
/// of multi-frame vectors and IQ keys are checked by the callers.
fn check_object(v: &Value, obj: &Map<String, Value>) -> Vec<String> {
    let expected = v["expected"].as_object().expect("expected object");
    let tol = |k: &str| v["tolerance"][k].as_f64().unwrap_or(0.0);
    let mut errs = Vec::new();
    for (key, want) in expected {
        match key.as_str() {
            // Handled by the multi-frame / IQ paths.
            "reject_or_keep_within_km" | "frames_in_order" | "valid_unique_frames" => {}
            "bds_candidates" => {
                let allowed = strings(want);
                let ok = match obj.get("bds").and_then(Value::as_str) {
                    Some(b) => allowed.contains(&b),
                    None => {
                        let ours = obj.get("bds_candidates").map(strings).unwrap_or_default();
                        !ours.is_empty() && ours.iter().all(|b| allowed.contains(b))
                    }
                };
                if !ok {
                    errs.push(format!(
                        "bds_candidates: got bds {:?} / candidates {:?}, want one of {want}",
                        obj.get("bds"),
                        obj.get("bds_candidates")
                    ));
                }
            }
            "bds_not" => {
                if let Some(b) = obj.get("bds").and_then(Value::as_str) {
                    if strings(want).contains(&b) {
                        errs.push(format!("bds_not: got bds {b}, excluded by {want}"));
                    }
                }
            }
            "lat_range" | "lon_range" => {
                let field = &key[..3];
                let r: Vec<f64> = want
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_f64).collect())
                    .unwrap_or_default();
                match obj.get(field).and_then(Value::as_f64) {
                    Some(x) if r.len() == 2 && r[0] <= x && x <= r[1] => {}
                    got => errs.push(format!("{key}: got {field} {got:?}, want within {want}")),
                }
            }
            _ => errs.extend(compare(key, want, obj.get(key), tol(key))),
        }
    }
    errs
}

fn reference_args(v: &Value) -> Vec<String> {
    match v.get("reference").and_then(Value::as_array) {
        Some(r) if r.len() == 2 => vec![
            "--lat".into(),
            r[0].to_string(),
            "--lon".into(),
            r[1].to_string(),
        ],
        _ => Vec::new(),
    }
}

fn json_args(v: &Value) -> Vec<String> {
    let mut args: Vec<String> = ["decode", "--iformat", "hex", "--output", "json"]
        .map(String::from)
        .to_vec();
    args.extend(reference_args(v));
    args.push("-".into());
    args
}

/// A single-frame vector.
fn check_hex(v: &Value, hex: &str) -> Vec<String> {
    let out = match run(&json_args(v), &format!("{hex}\n")).and_then(|s| json_lines(&s)) {
        Ok(o) => o,
        Err(e) => return vec![e],
    };
    match out.as_slice() {
        [obj] => check_object(v, obj),
        _ => vec![format!("{} JSON lines for one frame", out.len())],
    }
}

/// A multi-frame vector: the expectation is about the last frame.
fn check_messages(v: &Value, msgs: &[Value]) -> Vec<String> {
    let input: String = msgs
        .iter()
        .map(|m| format!("{} {}\n", m["t"], m["hex"].as_str().unwrap_or("")))
        .collect();
    let out = match run(&json_args(v), &input).and_then(|s| json_lines(&s)) {
        Ok(o) => o,
        Err(e) => return vec![e],
    };
    if out.len() != msgs.len() {
        return vec![format!(
            "{} JSON lines for {} frames",
            out.len(),
            msgs.len()
        )];
    }
    let last = out.last().expect("at least one frame");
    let mut errs = check_object(v, last);
    if let Some(k) = v["expected"]["reject_or_keep_within_km"].as_f64() {
        if let Some(p) = lat_lon(last) {
            match out.iter().find_map(lat_lon) {
                Some(first) if distance_km(first, p) <= k => {}
                first => errs.push(format!(
                    "reject_or_keep_within_km: last position {p:?} is {:.0} km from first {first:?}, limit {k}",
                    first.map_or(f64::NAN, |f| distance_km(f, p))
                )),
            }
        }
    }
    errs
}

/// An IQ recording: every frame the reference decoders agree on must be found.
fn check_iq(v: &Value, file: &str) -> Vec<String> {
    let path = format!("{TESTDATA}/{file}");
    let args: Vec<String> = [
        "decode",
        "--iformat",
        "cs16",
        "--sample-rate",
        "2400000",
        "--output",
        "avr",
        &path,
    ]
    .map(String::from)
    .to_vec();
    let out = match run(&args, "") {
        Ok(o) => o,
        Err(e) => return vec![e],
    };
    let found: BTreeSet<String> = out
        .lines()
        .filter_map(|l| l.trim().strip_prefix('*')?.strip_suffix(';'))
        .map(str::to_ascii_lowercase)
        .collect();
    let want: BTreeSet<String> = strings(&v["expected"]["valid_unique_frames"])
        .into_iter()
        .map(str::to_ascii_lowercase)
        .collect();
    let extra: Vec<&String> = found.difference(&want).collect();
    if !extra.is_empty() {
        eprintln!("{}: frames beyond the reference set: {extra:?}", v["id"]);
    }
    let missing: Vec<&String> = want.difference(&found).collect();
    if missing.is_empty() {
        Vec::new()
    } else {
        vec![format!("missing frames {missing:?}")]
    }
}

fn check_vector(v: &Value) -> Vec<String> {
    if let Some(file) = v["iq_file"].as_str() {
        check_iq(v, file)
    } else if let Some(msgs) = v["messages"].as_array() {
        check_messages(v, msgs)
    } else if let Some(hex) = v["hex"].as_str() {
        check_hex(v, hex)
    } else {
        vec!["vector has neither hex, messages nor iq_file".into()]
    }
}

#[test]
fn all_vectors_end_to_end() {
    let text = std::fs::read_to_string(VECTORS).expect("shared test vectors");
    let doc: Value = serde_json::from_str(&text).expect("vector JSON");
    let vectors = doc["vectors"].as_array().expect("vectors array");
    assert_eq!(
        doc["count"].as_u64(),
        Some(vectors.len() as u64),
        "count field disagrees with the vector list"
    );

    // category -> (passed, total)
    let mut tally: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut failures = Vec::new();
    for v in vectors {
        let cat = v["category"].as_str().unwrap_or("?");
        let errs = check_vector(v);
        let entry = tally.entry(cat).or_default();
        entry.1 += 1;
        if errs.is_empty() {
            entry.0 += 1;
        } else {
            failures.push(format!(
                "{} [{}] {}: {}",
                v["id"].as_str().unwrap_or("?"),
                cat,
                v["hex"].as_str().unwrap_or(""),
                errs.join("; ")
            ));
        }
    }

    eprintln!("\nvector results by category:");
    for (cat, (pass, total)) in &tally {
        eprintln!("  {cat}: {pass}/{total}");
    }
    let (pass, total) = tally.values().fold((0, 0), |(p, t), (a, b)| (p + a, t + b));
    eprintln!("  all: {pass}/{total}");
    assert_eq!(total, vectors.len());
    assert!(
        failures.is_empty(),
        "{} failing vector(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
