//! `dns.redirect` end to end (`iotfence_tests::redirect::lab`), on this
//! machine's kernel; the kernel matrix runs it in Debian's kernels.

use iotfence_tests::redirect::lab;

#[test]
fn xdp_hard_coded_resolver_works_through_the_redirect() {
    lab::run("xdp").unwrap();
}

#[test]
fn tc_hard_coded_resolver_works_through_the_redirect() {
    lab::run("tc").unwrap();
}
