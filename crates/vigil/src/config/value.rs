//! How a key's value is read from text and written back, by the type of the setting it
//! fills: one implementation per type, so that every key of a type parses alike.

use std::time::Duration;

use super::duration;
use super::keys::Kind;
use super::settings::{LogFormat, Preset};

/// A type a key's value is parsed into. [`Value::render`] writes what [`Value::parse`] reads.
pub(crate) trait Value: Sized {
    /// How it is written (decides the quoting of the rendered default file).
    const KIND: Kind;
    /// Reads a value as given in a file, a variable or a flag; the error is the reason.
    fn parse(text: &str) -> Result<Self, String>;
    /// Writes the value back.
    fn render(&self) -> String;
}

impl Value for String {
    const KIND: Kind = Kind::Text;
    fn parse(text: &str) -> Result<Self, String> {
        Ok(text.trim().to_string())
    }
    fn render(&self) -> String {
        self.clone()
    }
}

/// Empty = unset.
impl Value for Option<String> {
    const KIND: Kind = Kind::Text;
    fn parse(text: &str) -> Result<Self, String> {
        let v = text.trim();
        Ok((!v.is_empty()).then(|| v.to_string()))
    }
    fn render(&self) -> String {
        self.clone().unwrap_or_default()
    }
}

/// Comma-separated (a YAML sequence is flattened to this); empty items dropped.
impl Value for Vec<String> {
    const KIND: Kind = Kind::List;
    fn parse(text: &str) -> Result<Self, String> {
        Ok(text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect())
    }
    fn render(&self) -> String {
        self.join(",")
    }
}

impl Value for bool {
    const KIND: Kind = Kind::Bool;
    fn parse(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Ok(true),
            "false" | "no" | "off" | "0" => Ok(false),
            other => Err(format!("`{other}` is not true or false")),
        }
    }
    fn render(&self) -> String {
        self.to_string()
    }
}

macro_rules! whole_numbers {
    ($($t:ty),*) => {$(
        impl Value for $t {
            const KIND: Kind = Kind::Number;
            fn parse(text: &str) -> Result<Self, String> {
                text.trim()
                    .parse()
                    .map_err(|_| "expected a whole number".to_string())
            }
            fn render(&self) -> String {
                self.to_string()
            }
        }
    )*};
}

whole_numbers!(u8, u32, usize);

/// Rendered with its decimal point (`8.0`), as the seed writes the phi threshold.
impl Value for f64 {
    const KIND: Kind = Kind::Number;
    fn parse(text: &str) -> Result<Self, String> {
        text.trim()
            .parse()
            .map_err(|_| "expected a number such as 8.0".to_string())
    }
    fn render(&self) -> String {
        format!("{self:?}")
    }
}

/// A bare number is milliseconds (see [`duration`]).
impl Value for Duration {
    const KIND: Kind = Kind::Duration;
    fn parse(text: &str) -> Result<Self, String> {
        duration::parse(text)
    }
    fn render(&self) -> String {
        duration::render(*self)
    }
}

impl Value for LogFormat {
    const KIND: Kind = Kind::Text;
    fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err("expected text or json".into()),
        }
    }
    fn render(&self) -> String {
        match self {
            LogFormat::Text => "text".into(),
            LogFormat::Json => "json".into(),
        }
    }
}

impl Value for Preset {
    const KIND: Kind = Kind::Text;
    fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            "lan" => Ok(Preset::Lan),
            "wan" => Ok(Preset::Wan),
            _ => Err("expected lan or wan".into()),
        }
    }
    fn render(&self) -> String {
        match self {
            Preset::Lan => "lan".into(),
            Preset::Wan => "wan".into(),
        }
    }
}
