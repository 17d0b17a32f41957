//! `dns.redirect` in the datapath (BPF_PROG_TEST_RUN), on this machine's
//! kernel; the kernel matrix runs the same checks in Debian's kernels.

use iotfence_tests::redirect::datapath;

#[test]
fn tc_judge_rewrites_a_hard_coded_resolver_query_and_its_answer() {
    datapath::tc_judge_rewrites_a_hard_coded_resolver_query_and_its_answer(&datapath::harness(
        true,
    ));
}

#[test]
fn xdp_passes_the_query_for_tc_beside_it_to_rewrite() {
    datapath::xdp_passes_the_query_for_tc_beside_it_to_rewrite(&datapath::harness(true));
}

#[test]
fn only_port_53_to_other_resolvers_of_allowed_devices_is_redirected() {
    datapath::only_port_53_to_other_resolvers_of_allowed_devices_is_redirected(&datapath::harness(
        true,
    ));
}

#[test]
fn an_answer_is_rewritten_only_towards_the_mac_that_asked() {
    datapath::an_answer_is_rewritten_only_towards_the_mac_that_asked(&datapath::harness(true));
}

#[test]
fn without_redirect_a_hard_coded_resolver_is_not_reached() {
    datapath::without_redirect_a_hard_coded_resolver_is_not_reached(&datapath::harness(false));
}
