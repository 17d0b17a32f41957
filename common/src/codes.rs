//! Closed sets of codes: each variant with its number (part of a map
//! layout or an array index) and its name (a stable metric label or
//! policy keyword), defined once by `codes!`, with `ALL`, `name()`,
//! `from_u8()` and `from_name()`.

/// Defines a `#[repr(u8)]` enum whose variants carry `= number => "name"`.
#[macro_export]
macro_rules! codes {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $($(#[$vmeta:meta])* $variant:ident = $number:literal => $label:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[repr(u8)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* $variant = $number,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: [$name; [$(stringify!($variant)),+].len()] = [$($name::$variant),+];

            /// The stable name (metric label, policy keyword).
            pub const fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $label,)+
                }
            }

            pub const fn from_u8(n: u8) -> Option<$name> {
                match n {
                    $($number => Some($name::$variant),)+
                    _ => None,
                }
            }

            pub fn from_name(s: &str) -> Option<$name> {
                match s {
                    $($label => Some($name::$variant),)+
                    _ => None,
                }
            }
        }
    };
}
