//! `--config FILE`: every setting of `serve` in an optional TOML file, under
//! the flags and the environment.
//!
//! The one precedence: a flag, else its environment variable, else the
//! file, else the built-in default. The file is read before the command
//! line is parsed, and each of its settings becomes the default of its
//! flag, so that flags and the environment win and each value is checked
//! by the same parser as a flag's.
//!
//! Keys are the flags' long names, with `-` or `_` (`max_wait = "60s"`,
//! `tenant = ["team-a=cloud-a"]`); a list is given for the flags that take
//! several values.

use std::{ffi::OsString, path::PathBuf};

use anyhow::Context;

/// The flag naming the file, and its environment variable.
pub const CONFIG_FLAG: &str = "config";
/// The environment variable naming the file.
pub const CONFIG_ENV: &str = "BACKUP_GATEWAY_CONFIG";

/// The file named by `--config FILE` (or `--config=FILE`) in `args`, or by
/// `BACKUP_GATEWAY_CONFIG`.
pub fn config_path(args: &[OsString]) -> Option<PathBuf> {
    let flag = format!("--{CONFIG_FLAG}");
    let prefixed = format!("--{CONFIG_FLAG}=");
    let mut args = args.iter().filter_map(|a| a.to_str());
    while let Some(arg) = args.next() {
        if arg == flag {
            return args.next().map(PathBuf::from);
        }
        if let Some(path) = arg.strip_prefix(&prefixed) {
            return Some(PathBuf::from(path));
        }
    }
    std::env::var_os(CONFIG_ENV).map(PathBuf::from)
}

/// The settings of the file at `path`: each flag's id (as the parser
/// knows it) with its value(s). `settings` is the command whose flags the
/// file may set.
pub fn read_settings(
    path: &std::path::Path,
    settings: &clap::Command,
) -> anyhow::Result<Vec<(String, Vec<String>)>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--{CONFIG_FLAG} {}: cannot read it", path.display()))?;
    let table: toml::Table = text
        .parse()
        .with_context(|| format!("--{CONFIG_FLAG} {}: not valid TOML", path.display()))?;
    let mut read = Vec::new();
    for (key, value) in table {
        let long = key.replace('_', "-");
        let at = || format!("--{CONFIG_FLAG} {}: `{key}`", path.display());
        let arg = settings
            .get_arguments()
            .find(|arg| arg.get_long() == Some(long.as_str()) && long != CONFIG_FLAG)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "{}: no such setting (the keys are the flags of `serve --help`)",
                    at()
                )
            })?;
        let several = arg.get_value_delimiter().is_some();
        let values = match value {
            toml::Value::String(s) => vec![s],
            toml::Value::Integer(n) => vec![n.to_string()],
            toml::Value::Float(x) => vec![x.to_string()],
            toml::Value::Boolean(b) => vec![b.to_string()],
            toml::Value::Array(items) if several => items
                .into_iter()
                .map(|item| match item {
                    toml::Value::String(s) => Ok(s),
                    other => Err(anyhow::anyhow!(
                        "{}: a list of strings is expected, not {}",
                        at(),
                        other.type_str()
                    )),
                })
                .collect::<anyhow::Result<Vec<_>>>()?,
            other => anyhow::bail!(
                "{}: {} is not a value of this setting",
                at(),
                other.type_str()
            ),
        };
        read.push((arg.get_id().to_string(), values));
    }
    Ok(read)
}

/// True when `arg` is given on the command line `args` (`--long VALUE` or
/// `--long=VALUE`) or by its environment variable.
fn is_given(arg: &clap::Arg, args: &[OsString]) -> bool {
    let on_command_line = arg.get_long().is_some_and(|long| {
        let flag = format!("--{long}");
        let prefixed = format!("{flag}=");
        args.iter()
            .filter_map(|a| a.to_str())
            .any(|a| a == flag || a.starts_with(&prefixed))
    });
    on_command_line
        || arg
            .get_env()
            .is_some_and(|var| std::env::var_os(var).is_some())
}

/// The file's key whose value the parser refused in `error`, when the
/// value came from the file: the flag (`settings` holds the flags the file
/// may set) was given neither on the command line `args` nor by its
/// environment variable.
pub fn bad_setting(
    error: &clap::Error,
    flags: &clap::Command,
    settings: &[(String, Vec<String>)],
    args: &[OsString],
) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if !matches!(
        error.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation
    ) {
        return None;
    }
    let Some(ContextValue::String(flag)) = error.get(ContextKind::InvalidArg) else {
        return None;
    };
    // `--max-wait <MAX_WAIT>`
    let long = flag.strip_prefix("--")?.split([' ', '=']).next()?;
    let arg = flags
        .get_arguments()
        .find(|arg| arg.get_long() == Some(long))?;
    let from_file = settings.iter().any(|(id, _)| id == arg.get_id().as_str());
    (from_file && !is_given(arg, args)).then(|| long.replace('-', "_"))
}

/// `command`'s subcommand `name` with the file's settings as its flags'
/// defaults. A setting whose flag excludes one given on the command line
/// `args` or in the environment (`jwt_secret_file` against
/// `--jwt-secret`) is left out: the flag or the environment wins over the
/// file, as for any other setting.
pub fn with_defaults(
    command: clap::Command,
    name: &str,
    settings: &[(String, Vec<String>)],
    args: &[OsString],
) -> clap::Command {
    command.mut_subcommand(name, |mut subcommand| {
        for (id, values) in settings {
            // A subcommand takes the settings it has (`migrate`: the store).
            let Some(arg) = subcommand.get_arguments().find(|arg| arg.get_id() == id) else {
                continue;
            };
            if subcommand
                .get_arg_conflicts_with(arg)
                .into_iter()
                .any(|other| is_given(other, args))
            {
                continue;
            }
            subcommand = subcommand.mut_arg(id.as_str(), |arg| {
                arg.default_values(values.iter().map(|v| clap::builder::OsStr::from(v.clone())))
            });
        }
        subcommand
    })
}

#[cfg(test)]
mod tests {
    use clap::{Args, Command};

    fn settings() -> Command {
        crate::config::Config::augment_args(Command::new("serve"))
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().expect("file");
        std::fs::write(file.path(), text).expect("written");
        file
    }

    #[test]
    fn settings_are_read_by_their_flags() {
        let config = file(
            "max_wait = \"30s\"\nrate-limit = 7\ntenant = [\"a=cloud-a\", \"b=cloud-b\"]\njwt_allow_any_issuer_audience = true\n",
        );
        let mut read = super::read_settings(config.path(), &settings()).expect("read");
        read.sort();
        let owned = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            read,
            vec![
                ("jwt_allow_any_issuer_audience".to_owned(), owned(&["true"])),
                ("max_wait".to_owned(), owned(&["30s"])),
                ("rate_limit".to_owned(), owned(&["7"])),
                ("tenants".to_owned(), owned(&["a=cloud-a", "b=cloud-b"])),
            ]
        );
    }

    #[test]
    fn unknown_keys_and_wrong_shapes_are_named() {
        for (text, expected) in [
            ("colour = \"red\"", "`colour`: no such setting"),
            ("max_wait = [\"1s\"]", "`max_wait`: array is not a value"),
            ("tenant = [1]", "`tenant`: a list of strings"),
            ("= broken", "not valid TOML"),
        ] {
            let config = file(text);
            let error = super::read_settings(config.path(), &settings())
                .expect_err(text)
                .to_string();
            let chain = format!("{error:#}");
            assert!(chain.contains(expected), "{text}: {chain}");
        }
    }

    #[test]
    fn the_file_is_named_by_flag_or_environment() {
        let args = |a: &[&str]| a.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
        assert_eq!(
            super::config_path(&args(&["gw", "serve", "--config", "/etc/gw.toml"])),
            Some("/etc/gw.toml".into())
        );
        assert_eq!(
            super::config_path(&args(&["gw", "serve", "--config=/etc/gw.toml"])),
            Some("/etc/gw.toml".into())
        );
    }
}
