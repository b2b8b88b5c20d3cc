//! Where settings come from, and the one merge: **flags > environment >
//! file > default**.
//!
//! Every layer is the same thing, a map from an option's key (its field
//! name: `sample_rate`) to its text and where that text came from. A flag
//! `--sample-rate 2.0M`, a variable `ADSB_KINESIS_SAMPLE_RATE=2.0M` and a
//! TOML line `sample_rate = "2.0M"` all become `sample_rate → "2.0M"`; TOML
//! numbers and booleans become their text. The merged map is then read
//! into each section struct by serde through [`Text`], a deserializer that
//! parses a number or a boolean from the text when the field asks for one.
//! So each option is declared once (a field with its clap and serde
//! attributes), each value has one parser, and an error can name the
//! flag, variable or file line it came from.
//!
//! Defaults are not a layer: a section's `Default` is what clap makes of
//! an empty command line (its `default_value`s, also shown in `--help`),
//! and serde's `#[serde(default)]` fills every key no layer set.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, Command, FromArgMatches};
use serde::de::value::{Error as TextError, MapDeserializer};
use serde::de::{DeserializeOwned, IntoDeserializer, Visitor};
use serde::Deserializer;

use super::ConfigError;

/// Prefix of the environment variables that set options:
/// `ADSB_KINESIS_SOURCE`, `ADSB_KINESIS_STATS_INTERVAL`, ...
pub const ENV_PREFIX: &str = "ADSB_KINESIS_";

/// Options that name one thing two ways: a layer that sets one of them
/// replaces whatever a lower layer set for any of them (a `--stream` flag
/// wins over `stream_arn` in the file, rather than clashing with it).
const ALTERNATIVES: &[&[&str]] = &[&["stream", "stream_arn"]];

/// Where a setting's text came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A key of the TOML file, at this 1-based line if found.
    File {
        /// The file.
        path: PathBuf,
        /// The key's line.
        line: Option<usize>,
    },
    /// An `ADSB_KINESIS_*` variable.
    Env(String),
    /// A command-line flag, `--name`.
    Flag(String),
}

impl Origin {
    /// The error for a bad value of `key` from here.
    fn error(&self, key: &str, message: String) -> ConfigError {
        match self {
            Origin::File { path, line } => ConfigError::Parse {
                path: path.clone(),
                line: *line,
                message: format!("{key}: {message}"),
            },
            Origin::Env(var) => ConfigError::Env {
                var: var.clone(),
                message,
            },
            Origin::Flag(flag) => ConfigError::Flag {
                flag: flag.clone(),
                message,
            },
        }
    }
}

/// One option's text and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The value as written (TOML numbers and booleans as their text).
    pub text: String,
    /// Where it was written.
    pub origin: Origin,
}

/// Settings by key: one layer, or the merge of several.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layer {
    settings: BTreeMap<String, Setting>,
}

/// The keys of a section: its clap argument ids, which are its field names.
pub fn keys_of<C: Args>() -> BTreeSet<String> {
    C::augment_args(Command::new("keys"))
        .get_arguments()
        .map(|a| a.get_id().to_string())
        .collect()
}

/// The `Default` of a section: its fields as clap sets them from an empty
/// command line.
pub fn clap_defaults<C: Args + FromArgMatches>() -> C {
    let cmd = C::augment_args(Command::new("defaults").no_binary_name(true));
    // Invariant: every default_value parses (config::tests checks each
    // section), so an empty command line always does.
    let m = cmd
        .try_get_matches_from(std::iter::empty::<String>())
        .expect("the built-in defaults parse");
    C::from_arg_matches(&m).expect("the built-in defaults parse")
}

impl Layer {
    /// The settings of a TOML file. A key no command knows (`known`) is an
    /// error naming it and its line; keys of other commands stay and are
    /// ignored by the sections that do not have them.
    pub fn from_toml(
        path: &Path,
        text: &str,
        known: &BTreeSet<String>,
    ) -> Result<Layer, ConfigError> {
        let parse_error = |line, message| ConfigError::Parse {
            path: path.to_path_buf(),
            line,
            message,
        };
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let line = e.span().map(|s| line_of_offset(text, s.start));
            parse_error(line, one_line(e.message()))
        })?;
        let mut layer = Layer::default();
        for (key, value) in table {
            let line = line_of_key(text, &key);
            if !known.contains(&key) {
                return Err(parse_error(
                    line,
                    format!("unknown key `{key}` (keys are the option names with _ for -)"),
                ));
            }
            let text = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                _ => {
                    return Err(parse_error(
                        line,
                        format!("{key}: expected a string, a number or true/false"),
                    ))
                }
            };
            let origin = Origin::File {
                path: path.to_path_buf(),
                line,
            };
            layer.settings.insert(key, Setting { text, origin });
        }
        Ok(layer)
    }

    /// The `ADSB_KINESIS_<KEY>` variables of the `known` keys, as `env`
    /// reports them. An empty variable counts as unset.
    pub fn from_env(env: impl Fn(&str) -> Option<String>, known: &BTreeSet<String>) -> Layer {
        let mut layer = Layer::default();
        for key in known {
            let var = env_var(key);
            if let Some(text) = env(&var).filter(|v| !v.trim().is_empty()) {
                let origin = Origin::Env(var);
                layer.settings.insert(key.clone(), Setting { text, origin });
            }
        }
        layer
    }

    /// The options given on the command line, as written there (clap has
    /// already checked them with the same parsers). Defaults clap filled
    /// in are left out: they are not a layer.
    pub fn from_flags(m: &ArgMatches, known: &BTreeSet<String>) -> Layer {
        let mut layer = Layer::default();
        for id in m.ids() {
            let key = id.as_str();
            if !known.contains(key) || m.value_source(key) != Some(ValueSource::CommandLine) {
                continue;
            }
            let Some(text) = m
                .get_raw(key)
                .and_then(|mut v| v.next())
                .map(|v| v.to_string_lossy().into_owned())
            else {
                continue;
            };
            let origin = Origin::Flag(format!("--{}", key.replace('_', "-")));
            layer
                .settings
                .insert(key.to_owned(), Setting { text, origin });
        }
        layer
    }

    /// This layer under `higher`: `higher`'s settings win, and one of a
    /// pair of alternatives there removes the pair from here.
    pub fn under(mut self, higher: Layer) -> Layer {
        for group in ALTERNATIVES {
            if group.iter().any(|k| higher.settings.contains_key(*k)) {
                for k in *group {
                    self.settings.remove(*k);
                }
            }
        }
        self.settings.extend(higher.settings);
        self
    }

    /// The setting of `key`, if any layer set it.
    pub fn get(&self, key: &str) -> Option<&Setting> {
        self.settings.get(key)
    }

    /// Reads section `C` from the settings of its keys; keys it lacks take
    /// its defaults. A bad value is reported with the key and its origin.
    pub fn section<C: Args + DeserializeOwned>(&self) -> Result<C, ConfigError> {
        let keys = keys_of::<C>();
        let mine: Vec<(&str, &Setting)> = self
            .settings
            .iter()
            .filter(|(k, _)| keys.contains(k.as_str()))
            .map(|(k, s)| (k.as_str(), s))
            .collect();
        let read = |settings: &[(&str, &Setting)]| {
            C::deserialize(MapDeserializer::<_, TextError>::new(
                settings.iter().map(|(k, s)| (*k, Text(&s.text))),
            ))
        };
        match read(&mine) {
            Ok(c) => Ok(c),
            Err(all) => {
                // Which key? Each alone, over the defaults.
                for one in mine.chunks(1) {
                    if let Err(e) = read(one) {
                        let (key, s) = one[0];
                        return Err(s.origin.error(key, e.to_string()));
                    }
                }
                Err(ConfigError::Invalid {
                    field: "config".into(),
                    message: all.to_string(),
                })
            }
        }
    }
}

/// The variable that sets `key`.
pub fn env_var(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.to_ascii_uppercase())
}

/// Checks the names and values of the `ADSB_KINESIS_*` variables in
/// `vars` (the process environment): a name that is no option
/// (`ADSB_KINESIS_STRAEM`) or a value that is not UTF-8 is an error, as an
/// unknown key in the file is, rather than a setting silently ignored.
/// `ADSB_KINESIS_CONFIG` names the file.
pub fn check_env(
    vars: impl Iterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
    known: &BTreeSet<String>,
) -> Result<(), ConfigError> {
    for (name, value) in vars {
        let Some(name) = name.to_str() else { continue };
        let Some(key) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let key = key.to_ascii_lowercase();
        if key != "config" && !known.contains(&key) {
            let hint = known
                .iter()
                .map(|k| (edit_distance(k, &key), k))
                .min()
                .filter(|(d, _)| *d <= 2)
                .map(|(_, k)| format!("; did you mean {}?", env_var(k)))
                .unwrap_or_default();
            return Err(ConfigError::Env {
                var: name.to_owned(),
                message: format!("no such option (see `adsb-kinesis run --help`){hint}"),
            });
        }
        if value.to_str().is_none() {
            return Err(ConfigError::Env {
                var: name.to_owned(),
                message: "the value is not UTF-8".into(),
            });
        }
    }
    Ok(())
}

/// Levenshtein distance, for the "did you mean" of a misspelt variable.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (diag + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diag = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn line_of_offset(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The 1-based line where `key = ...` is written (bare or quoted).
fn line_of_key(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            [key.to_owned(), format!("\"{key}\""), format!("'{key}'")]
                .iter()
                .any(|k| {
                    l.strip_prefix(k.as_str())
                        .is_some_and(|rest| rest.trim_start().starts_with('='))
                })
        })
        .map(|i| i + 1)
}

/// One setting's text as a serde deserializer: a field asking for a
/// number or a boolean gets it parsed from the text, anything else gets
/// the text itself (and types like [`crate::demod::Rate`] parse it).
#[derive(Clone, Copy)]
pub struct Text<'a>(pub &'a str);

impl<'de> IntoDeserializer<'de, TextError> for Text<'de> {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

macro_rules! parse_number {
    ($($method:ident $visit:ident $t:ty),*) => {$(
        fn $method<V: Visitor<'de>>(self, v: V) -> Result<V::Value, TextError> {
            match self.0.trim().parse::<$t>() {
                Ok(n) => v.$visit(n),
                Err(_) => Err(serde::de::Error::custom(format!(
                    "{:?} is not a valid number here", self.0
                ))),
            }
        }
    )*};
}

impl<'de> Deserializer<'de> for Text<'de> {
    type Error = TextError;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, TextError> {
        v.visit_borrowed_str(self.0)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value, TextError> {
        match self.0.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => v.visit_bool(true),
            "0" | "false" | "no" | "off" => v.visit_bool(false),
            _ => Err(serde::de::Error::custom(format!(
                "{:?} is not true or false",
                self.0
            ))),
        }
    }

    parse_number!(
        deserialize_i8 visit_i8 i8, deserialize_i16 visit_i16 i16,
        deserialize_i32 visit_i32 i32, deserialize_i64 visit_i64 i64,
        deserialize_u8 visit_u8 u8, deserialize_u16 visit_u16 u16,
        deserialize_u32 visit_u32 u32, deserialize_u64 visit_u64 u64,
        deserialize_f32 visit_f32 f32, deserialize_f64 visit_f64 f64
    );

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, TextError> {
        v.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        v: V,
    ) -> Result<V::Value, TextError> {
        v.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        i128 u128 char str string bytes byte_buf unit unit_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misspelt_and_non_utf8_variables_are_errors() {
        use std::os::unix::ffi::OsStringExt;
        let known: BTreeSet<String> = ["stream", "stats_interval"].map(String::from).into();
        let vars = |v: Vec<(&str, std::ffi::OsString)>| {
            v.into_iter()
                .map(|(k, v)| (k.into(), v))
                .collect::<Vec<_>>()
                .into_iter()
        };
        let ok = vars(vec![
            ("ADSB_KINESIS_STREAM", "adsb".into()),
            ("ADSB_KINESIS_CONFIG", "/etc/a.toml".into()),
            ("HOME", std::ffi::OsString::from_vec(vec![0xff])),
        ]);
        assert!(check_env(ok, &known).is_ok());
        let err = check_env(vars(vec![("ADSB_KINESIS_STRAEM", "adsb".into())]), &known)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "ADSB_KINESIS_STRAEM: no such option (see `adsb-kinesis run --help`); \
             did you mean ADSB_KINESIS_STREAM?"
        );
        let err = check_env(vars(vec![("ADSB_KINESIS_WHATEVER", "1".into())]), &known)
            .unwrap_err()
            .to_string();
        assert!(!err.contains("did you mean"), "{err}");
        let bad = vars(vec![(
            "ADSB_KINESIS_STREAM",
            std::ffi::OsString::from_vec(vec![b'a', 0xff]),
        )]);
        assert_eq!(
            check_env(bad, &known).unwrap_err().to_string(),
            "ADSB_KINESIS_STREAM: the value is not UTF-8"
        );
    }

    fn known(keys: &[&str]) -> BTreeSet<String> {
        keys.iter().map(|k| k.to_string()).collect()
    }

    #[test]
    fn toml_values_become_text_with_their_lines() {
        let text = "a = 5\n\n  b = \"x y\"\n\"c\" = true\nd = -1.5\n";
        let l = Layer::from_toml(Path::new("f.toml"), text, &known(&["a", "b", "c", "d"])).unwrap();
        let get = |k| {
            let s = l.get(k).unwrap();
            let Origin::File { line, .. } = s.origin else {
                panic!("{k} is not from the file")
            };
            (s.text.as_str(), line)
        };
        assert_eq!(get("a"), ("5", Some(1)));
        assert_eq!(get("b"), ("x y", Some(3)));
        assert_eq!(get("c"), ("true", Some(4)));
        assert_eq!(get("d"), ("-1.5", Some(5)));
    }

    #[test]
    fn unknown_keys_tables_and_syntax_are_named_with_their_line() {
        let k = known(&["fix"]);
        let err = |t| {
            Layer::from_toml(Path::new("f.toml"), t, &k)
                .unwrap_err()
                .to_string()
        };
        let e = err("fix = 1\nbogus_key = 3\n");
        assert!(
            e.starts_with("config file f.toml, line 2: ") && e.contains("bogus_key"),
            "{e}"
        );
        let e = err("fix = [1, 2]\n");
        assert!(e.starts_with("config file f.toml, line 1: fix: "), "{e}");
        let e = err("fix = 1\nfix = \n");
        assert!(e.starts_with("config file f.toml, line 2: "), "{e}");
        assert!(!e.contains('\n'));
    }

    #[test]
    fn higher_layers_win_and_alternatives_replace_each_other() {
        let k = known(&["stream", "stream_arn", "fix", "lat"]);
        let file = Layer::from_toml(
            Path::new("f"),
            "stream_arn = \"arn:aws:kinesis:r:1:stream/a\"\nfix = 2\nlat = 1\n",
            &k,
        )
        .unwrap();
        let env = Layer::from_env(
            |v| match v {
                "ADSB_KINESIS_STREAM" => Some("b".into()),
                "ADSB_KINESIS_FIX" => Some("0".into()),
                "ADSB_KINESIS_LAT" => Some("  ".into()),
                _ => None,
            },
            &k,
        );
        let merged = file.under(env);
        assert_eq!(merged.get("stream").unwrap().text, "b");
        assert!(merged.get("stream_arn").is_none());
        let fix = merged.get("fix").unwrap();
        assert_eq!(
            (fix.text.as_str(), &fix.origin),
            ("0", &Origin::Env("ADSB_KINESIS_FIX".into()))
        );
        // An empty variable is unset: the file's value stays.
        assert_eq!(merged.get("lat").unwrap().text, "1");
    }

    #[test]
    fn text_parses_what_the_field_asks_for() {
        use serde::Deserialize;
        #[derive(Deserialize, Debug, PartialEq)]
        struct S {
            n: u8,
            f: f64,
            b: bool,
            o: Option<i32>,
            s: String,
        }
        let kv = [
            ("n", "7"),
            ("f", "2.5"),
            ("b", "yes"),
            ("o", "-3"),
            ("s", "7"),
        ];
        let s = S::deserialize(MapDeserializer::<_, TextError>::new(
            kv.iter().map(|(k, v)| (*k, Text(v))),
        ))
        .unwrap();
        assert_eq!(
            s,
            S {
                n: 7,
                f: 2.5,
                b: true,
                o: Some(-3),
                s: "7".into()
            }
        );
        let bad = [("n", "300")];
        let e = S::deserialize(MapDeserializer::<_, TextError>::new(
            bad.iter().map(|(k, v)| (*k, Text(v))),
        ))
        .unwrap_err();
        assert!(e.to_string().contains("\"300\""), "{e}");
    }
}
