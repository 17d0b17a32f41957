//! Debian's router kernels under qemu (TCG, no KVM), to prove iotfence on
//! the kernels users run: Debian 11 (5.10), 12 (6.1) and 13 (6.12).
//!
//! ```no_run
//! use iotfence_tests::vm::{Guest, Kernel, DEFAULT_TIMEOUT};
//! let k = Kernel::Bookworm.fetch()?;
//! let out = Guest::new(&k).exe("/usr/sbin/ip").run("uname -r; ip link", DEFAULT_TIMEOUT)?;
//! assert_eq!(out.status, 0, "{}", out.console);
//! # anyhow::Ok(())
//! ```
//!
//! - `kernels`: fetch each release's cloud kernel through a private apt
//!   state into `target/kernels/` (cached, locked);
//! - `modules`: the modules `/init` loads, with their dependencies;
//! - `initramfs` and `cpio`: busybox, `/init`, host files and libraries;
//! - `userland`: another architecture's programs (its Debian packages) and
//!   the libraries they load, for a guest that cannot run the host's;
//! - `boot`: qemu with a timeout, the exit status from a console marker;
//!   one guest at a time per machine (a lock in `target/kernels/`).

mod apt;
mod boot;
mod cpio;
mod initramfs;
mod kernels;
mod modules;
mod userland;

pub use boot::{Guest, Outcome, DEFAULT_TIMEOUT, MODULES, QEMU, QEMU_ARM64};
pub use kernels::{cache_root, Fetched, Kernel};
pub use userland::Userland;
