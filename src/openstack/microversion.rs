//! Cinder microversions (`volume 3.NN`), parsed once and compared as
//! numbers: "3.9" is older than "3.43".

use std::{fmt, str::FromStr};

/// A Cinder API microversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Microversion {
    major: u16,
    minor: u16,
}

impl Microversion {
    /// Served when no version is asked for.
    pub const BASE: Microversion = Microversion::new(3, 0);
    /// Backup `metadata` on create and show: the gateway's job id travels
    /// there, so every backup call needs it.
    pub const BACKUP_METADATA: Microversion = Microversion::new(3, 43);
    /// `availability_zone` on backup create.
    pub const BACKUP_AZ: Microversion = Microversion::new(3, 51);

    /// A version from its two numbers.
    pub const fn new(major: u16, minor: u16) -> Self {
        Microversion { major, minor }
    }

    /// The `OpenStack-API-Version` header value. The service word must be
    /// `volume`: Cinder does not recognise `block-storage` there.
    pub fn header_value(self) -> String {
        format!("volume {self}")
    }
}

impl fmt::Display for Microversion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl FromStr for Microversion {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (major, minor) = s
            .split_once('.')
            .ok_or_else(|| format!("`{s}` is not MAJOR.MINOR"))?;
        Ok(Microversion {
            major: major
                .parse()
                .map_err(|_| format!("`{s}` is not MAJOR.MINOR"))?,
            minor: minor
                .parse()
                .map_err(|_| format!("`{s}` is not MAJOR.MINOR"))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Microversion;

    #[test]
    fn compares_numerically() {
        let v39: Microversion = "3.9".parse().unwrap();
        let v343: Microversion = "3.43".parse().unwrap();
        assert!(v39 < v343);
        assert_eq!(v343, Microversion::BACKUP_METADATA);
        assert!("3".parse::<Microversion>().is_err());
        assert!("3.x".parse::<Microversion>().is_err());
        assert_eq!(Microversion::BACKUP_AZ.header_value(), "volume 3.51");
    }
}
