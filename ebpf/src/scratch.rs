//! The per-CPU scratch every program builds its map keys in.

use aya_ebpf::maps::{lpm_trie::Key, LpmTrie};
use iotfence_common::{
    dns::{RedirectKey, RedirectValue},
    keys::SCOPE_BITS,
    values::FlowValue,
    BindKey, FlowKey, LearnedKey, Lpm4, Lpm6, MacKey, ResentKey,
};

use crate::parse::Headers;

/// Per-CPU working memory for one packet (see `maps::SCRATCH`). Map keys
/// and values are built here rather than on the stack: the BPF stack is
/// small, and the verifier demands aligned stack access, which byte arrays
/// packed into a key (MACs, padding) would break once LLVM merges their
/// stores into wider ones (see `ebpf/.cargo/config.toml`).
pub struct Scratch {
    pub h: Headers,
    pub flow: FlowKey,
    pub flow_value: FlowValue,
    pub resent: ResentKey,
    pub learned: LearnedKey,
    pub mac: MacKey,
    pub bind: BindKey,
    pub lpm4: Key<Lpm4>,
    pub lpm6: Key<Lpm6>,
    /// The denial cache's key (`denied::key`).
    pub denied: [u64; 6],
    /// `redirect.rs`: a redirected query's key and value.
    pub redirect: RedirectKey,
    pub redirect_value: RedirectValue,
}

impl Scratch {
    /// Longest-prefix lookup of `addr` under `scope` in the map of the
    /// packet's family; the key is built in the scratch, not on the stack.
    #[inline(always)]
    pub fn lpm<'a, V>(
        &mut self,
        scope: [u8; 4],
        addr: [u8; 16],
        v4: &'a LpmTrie<Lpm4, V>,
        v6: &'a LpmTrie<Lpm6, V>,
    ) -> Option<&'a V> {
        if self.h.family == 4 {
            self.lpm4.prefix_len = SCOPE_BITS + 32;
            self.lpm4.data.scope = scope;
            self.lpm4.data.addr = [addr[12], addr[13], addr[14], addr[15]];
            v4.get(&self.lpm4)
        } else {
            self.lpm6.prefix_len = SCOPE_BITS + 128;
            self.lpm6.data.scope = scope;
            self.lpm6.data.addr = addr;
            v6.get(&self.lpm6)
        }
    }
}
