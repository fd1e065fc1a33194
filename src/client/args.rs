//! The client's command line: positional words, `--flag VALUE` or `--flag=VALUE`, switches, and
//! what follows `--` (the command `lock` runs). Each subcommand names the flags it takes; anything
//! else is a usage error (exit status 2).

use std::ffi::OsString;

/// The flags every subcommand takes, with a value.
const COMMON_VALUED: [&str; 2] = ["--server", "--token-file"];

/// A subcommand's words, parsed.
#[derive(Debug, Default)]
pub struct Args {
    pub positionals: Vec<String>,
    flags: Vec<(String, Option<String>)>,
    /// The words after `--`, when there was one.
    pub rest: Option<Vec<String>>,
}

impl Args {
    /// Parses `words` for a subcommand taking `valued` flags (with a value) and `switches`.
    pub fn parse(words: Vec<OsString>, valued: &[&str], switches: &[&str]) -> Result<Args, String> {
        let mut args = Args::default();
        let mut words = words.into_iter();
        while let Some(word) = words.next() {
            let word = word.into_string().map_err(|w| format!("{w:?} is not UTF-8"))?;
            if word == "--" {
                args.rest = Some(words.map(|w| w.to_string_lossy().into_owned()).collect());
                break;
            }
            if !word.starts_with("--") {
                args.positionals.push(word);
                continue;
            }
            let (name, inline) = match word.split_once('=') {
                Some((name, value)) => (name.to_string(), Some(value.to_string())),
                None => (word, None),
            };
            if valued.contains(&name.as_str()) || COMMON_VALUED.contains(&name.as_str()) {
                let value = match inline {
                    Some(value) => value,
                    None => words
                        .next()
                        .map(|w| w.to_string_lossy().into_owned())
                        .ok_or_else(|| format!("{name} needs a value"))?,
                };
                args.flags.push((name, Some(value)));
            } else if switches.contains(&name.as_str()) || name == "--help" {
                if inline.is_some() {
                    return Err(format!("{name} takes no value"));
                }
                args.flags.push((name, None));
            } else {
                return Err(format!("unknown flag {name}"));
            }
        }
        Ok(args)
    }

    /// The last value of a flag.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.flags.iter().rev().find(|(n, _)| n == name).and_then(|(_, v)| v.as_deref())
    }

    pub fn has(&self, name: &str) -> bool {
        self.flags.iter().any(|(n, _)| n == name)
    }

    /// Exactly `count` positional words, else a usage error naming them.
    pub fn exactly(&self, count: usize, names: &str) -> Result<&[String], super::Failure> {
        if self.positionals.len() != count {
            let why = format!("expected {names}, got {} word(s)", self.positionals.len());
            return Err(super::Failure::Usage(why));
        }
        Ok(&self.positionals)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn flags_take_values_either_way_and_dash_dash_ends_them() {
        let args =
            Args::parse(words(&["/x", "--server", "http://a:1", "--ttl=5", "-", "--", "sh", "--raw"]), &["--ttl"], &[])
                .unwrap();
        assert_eq!(args.positionals, ["/x", "-"]);
        assert_eq!((args.value("--server"), args.value("--ttl")), (Some("http://a:1"), Some("5")));
        assert_eq!(args.rest.unwrap(), ["sh", "--raw"]);
    }

    #[test]
    fn unknown_flags_and_missing_values_are_usage_errors() {
        assert!(Args::parse(words(&["--nope"]), &[], &[]).unwrap_err().contains("--nope"));
        assert!(Args::parse(words(&["--server"]), &[], &[]).unwrap_err().contains("needs a value"));
        assert!(Args::parse(words(&["--raw=1"]), &[], &["--raw"]).unwrap_err().contains("no value"));
    }
}
