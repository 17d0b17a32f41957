//! An Ethernet (MAC) address as the policy, events and status write it:
//! `aa:bb:cc:dd:ee:ff` (read with `:` or `-` between the six bytes).

use core::{fmt, str::FromStr};

/// A MAC address. Map keys keep the bare `[u8; 6]` (their layout is the
/// kernel's); this is the one place it is read from and written as text.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct Mac(pub [u8; 6]);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Not six two-digit hex bytes separated by `:` or `-`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadMac;

impl fmt::Display for BadMac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a MAC address (aa:bb:cc:dd:ee:ff)")
    }
}

impl core::error::Error for BadMac {}

impl FromStr for Mac {
    type Err = BadMac;

    fn from_str(s: &str) -> Result<Self, BadMac> {
        let mut mac = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in &mut mac {
            let p = parts.next().ok_or(BadMac)?;
            // Two hex digits: `from_str_radix` alone would take "+a".
            if p.len() != 2 || !p.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err(BadMac);
            }
            *byte = u8::from_str_radix(p, 16).map_err(|_| BadMac)?;
        }
        match parts.next() {
            Some(_) => Err(BadMac),
            None => Ok(Mac(mac)),
        }
    }
}

impl From<[u8; 6]> for Mac {
    fn from(m: [u8; 6]) -> Self {
        Mac(m)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::string::ToString;

    use super::*;

    #[test]
    fn written_as_read_and_bad_forms_refused() {
        let m: Mac = "02:00:5E:10:00:0a".parse().unwrap();
        assert_eq!(m, Mac([0x02, 0x00, 0x5e, 0x10, 0x00, 0x0a]));
        assert_eq!(m.to_string(), "02:00:5e:10:00:0a");
        assert_eq!("02-00-5e-10-00-0a".parse(), Ok(m));
        for bad in [
            "",
            "02:00:5e:10:00",
            "02:00:5e:10:00:0a:01",
            "02:00:5e:10:00:a",
            "02:00:5e:10:00:0g",
            "002:00:5e:10:00:0a",
            "+2:00:5e:10:00:0a",
        ] {
            assert_eq!(bad.parse::<Mac>(), Err(BadMac), "{bad}");
        }
    }
}
