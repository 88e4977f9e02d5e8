//! A small BTF blob written by hand for unit tests: a few drop reasons, an sk_buff with an
//! anonymous union, a kfree_skb tracepoint prototype and a function with named parameters.
//! Values are the fixture's own.

const INT: u32 = 1;
const PTR: u32 = 2;
const STRUCT: u32 = 4;
const UNION: u32 = 5;
const ENUM: u32 = 6;
const TYPEDEF: u32 = 8;
const FUNC: u32 = 12;
const FUNC_PROTO: u32 = 13;

#[derive(Default)]
struct Writer {
    types: Vec<u8>,
    strings: Vec<u8>,
}

impl Writer {
    fn s(&mut self, name: &str) -> u32 {
        if name.is_empty() {
            return 0;
        }
        let off = self.strings.len() as u32;
        self.strings.extend_from_slice(name.as_bytes());
        self.strings.push(0);
        off
    }
    fn u32s(&mut self, words: &[u32]) {
        for w in words {
            self.types.extend_from_slice(&w.to_le_bytes());
        }
    }
    fn ty(&mut self, name: &str, kind: u32, vlen: u32, size_or_type: u32) {
        let n = self.s(name);
        self.u32s(&[n, (kind << 24) | vlen, size_or_type]);
    }
    fn members(&mut self, members: &[(&str, u32, u32)]) {
        for (name, ty, bit_off) in members {
            let n = self.s(name);
            self.u32s(&[n, *ty, *bit_off]);
        }
    }
    fn enumerators(&mut self, values: &[(&str, u32)]) {
        for (name, v) in values {
            let n = self.s(name);
            self.u32s(&[n, *v]);
        }
    }
}

/// The fixture's `enum skb_drop_reason`.
pub const REASONS: [(&str, u32); 3] = [
    ("SKB_DROP_REASON_NOT_SPECIFIED", 2),
    ("SKB_DROP_REASON_NO_SOCKET", 3),
    ("SKB_DROP_REASON_NETFILTER_DROP", 12),
];

pub fn blob() -> Vec<u8> {
    let mut w = Writer { strings: vec![0], ..Default::default() };
    // [1] unsigned int
    w.ty("unsigned int", INT, 0, 4);
    w.u32s(&[32]);
    // [2] enum skb_drop_reason
    w.ty("skb_drop_reason", ENUM, REASONS.len() as u32, 4);
    w.enumerators(&REASONS);
    // [3] enum skb_drop_reason_subsys
    let subsys = [("SKB_DROP_REASON_SUBSYS_CORE", 0), ("SKB_DROP_REASON_SUBSYS_OPENVSWITCH", 3)];
    w.ty("skb_drop_reason_subsys", ENUM, subsys.len() as u32, 4);
    w.enumerators(&subsys);
    // [4] struct sk_buff { u64 pad; union { struct net_device *dev; }; unsigned int mark @24 }
    w.ty("sk_buff", STRUCT, 2, 32);
    w.members(&[("", 5, 64), ("mark", 1, 192)]);
    // [5] the anonymous union
    w.ty("", UNION, 1, 8);
    w.members(&[("dev", 6, 0)]);
    // [6] struct net_device *
    w.ty("", PTR, 0, 7);
    // [7] struct net_device { ...; possible_net_t nd_net @16 }
    w.ty("net_device", STRUCT, 1, 24);
    w.members(&[("nd_net", 13, 128)]);
    // [8] struct sk_buff *
    w.ty("", PTR, 0, 4);
    // [9] void *
    w.ty("", PTR, 0, 0);
    // [10] void (void *, struct sk_buff *, void *, enum skb_drop_reason)
    w.ty("", FUNC_PROTO, 4, 0);
    w.u32s(&[0, 9, 0, 8, 0, 9, 0, 2]);
    // [11] pointer to it, [12] typedef btf_trace_kfree_skb
    w.ty("", PTR, 0, 10);
    w.ty("btf_trace_kfree_skb", TYPEDEF, 0, 11);
    // [13] typedef possible_net_t -> [14] struct { struct net *net; }
    w.ty("possible_net_t", TYPEDEF, 0, 14);
    w.ty("", STRUCT, 1, 8);
    w.members(&[("net", 9, 0)]);
    // [15] int (struct sk_buff *skb, void *tb, unsigned int relax, unsigned int reuseport_ok)
    w.ty("", FUNC_PROTO, 4, 1);
    for (name, ty) in [("skb", 8), ("tb", 9), ("relax", 1), ("reuseport_ok", 1)] {
        let n = w.s(name);
        w.u32s(&[n, ty]);
    }
    // [16] the function bind_conflict of that prototype
    w.ty("bind_conflict", FUNC, 0, 15);

    let mut out = Vec::new();
    let hdr_len = 24u32;
    let (tl, sl) = (w.types.len() as u32, w.strings.len() as u32);
    out.extend_from_slice(&0xeb9fu16.to_le_bytes());
    out.extend_from_slice(&[1, 0]);
    for word in [hdr_len, 0, tl, tl, sl] {
        out.extend_from_slice(&word.to_le_bytes());
    }
    out.extend_from_slice(&w.types);
    out.extend_from_slice(&w.strings);
    out
}
