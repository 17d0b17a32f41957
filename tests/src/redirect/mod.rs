//! `dns.redirect` checks, shared by the host's tests and the kernel
//! matrix: the datapath alone (BPF_PROG_TEST_RUN), and the lab with real
//! stacks, dnsmasq and the daemon.

pub mod datapath;
pub mod lab;
