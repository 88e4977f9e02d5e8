//! The running kernel's layout for the programs' `LAYOUT`: struct offsets from BTF, and the
//! argument offsets of every hooked tracepoint for both kinds of program context.

pub use netprobe_common::layout::KernelLayout;
use std::collections::HashMap;

use netprobe_common::layout::{port_range, Args, BTF, CLASSIC, FENTRY, KPROBE, NO_ARG, RET};

use crate::{
    btf::{KernelBtf, Shape},
    error::Error,
    hooks::{Function, Tracepoint, Unavailable},
    kallsyms::Kallsyms,
    kconfig,
    tiers::Tier,
    tracefs::{Tracefs, Unreadable},
};

/// Struct offsets are required: a kernel without them cannot be read at all. Tracepoint and
/// function arguments that cannot be resolved only rule out the tiers that need them: an
/// unreadable tracefs, the classic tier.
pub fn resolve(
    btf: &KernelBtf,
    kallsyms: &Kallsyms,
    tracefs: Result<&Tracefs, &Unreadable>,
    tps: &[&Tracepoint],
    functions: &[&Function],
) -> Result<(KernelLayout, Unavailable), Error> {
    // The socket offsets are read from `struct sock_common`, which must open both socks
    // and request socks for one set of offsets to fit both.
    for (outer, field) in [("sock", "__sk_common"), ("request_sock", "__req_common")] {
        if btf.offset_of(outer, &[field])? != 0 {
            return Err(Error::Layout(format!("struct {outer} does not start with {field}")));
        }
    }
    let sk = |field: &str| btf.offset_of("sock_common", &[field]);
    let mut layout = KernelLayout {
        skb_dev: btf.offset_of("sk_buff", &["dev"])?,
        skb_sk: btf.offset_of("sk_buff", &["sk"])?,
        skb_head: btf.offset_of("sk_buff", &["head"])?,
        skb_network_header: btf.offset_of("sk_buff", &["network_header"])?,
        skb_len: btf.offset_of("sk_buff", &["len"])?,
        skb_tcp_gso_segs: btf.offset_of("sk_buff", &["cb"])?
            + btf.offset_of("tcp_skb_cb", &["tcp_gso_segs"])?,
        net_device_nd_net: btf.offset_of("net_device", &["nd_net", "net"])?,
        net_device_ifindex: btf.offset_of("net_device", &["ifindex"])?,
        net_ns_inum: btf.offset_of("net", &["ns", "inum"])?,
        sk_net: btf.offset_of("sock_common", &["skc_net", "net"])?,
        sk_family: sk("skc_family")?,
        sk_state: sk("skc_state")?,
        sk_daddr: sk("skc_daddr")?,
        sk_rcv_saddr: sk("skc_rcv_saddr")?,
        sk_dport: sk("skc_dport")?,
        sk_num: sk("skc_num")?,
        sk_v6_daddr: sk("skc_v6_daddr")?,
        sk_v6_rcv_saddr: sk("skc_v6_rcv_saddr")?,
        tcp_syn_sent: btf
            .enumerator("TCP_SYN_SENT")
            .ok_or_else(|| Error::Layout("no TCP_SYN_SENT in the kernel's BTF".into()))?,
        tcp_rcv_tstamp: jiffies32(btf, &["rcv_tstamp"])?,
        tcp_lrcvtime: jiffies32(btf, &["inet_conn", "icsk_ack", "lrcvtime"])?,
        tcp_lsndtime: jiffies32(btf, &["lsndtime"])?,
        hz: kconfig::hz().unwrap_or(0),
        task_nsproxy: btf.offset_of("task_struct", &["nsproxy"])?,
        nsproxy_net_ns: btf.offset_of("nsproxy", &["net_ns"])?,
        task_files: btf.offset_of("task_struct", &["files"])?,
        files_fdt: btf.offset_of("files_struct", &["fdt"])?,
        fdtable_max_fds: btf.offset_of("fdtable", &["max_fds"])?,
        fdtable_fd: btf.offset_of("fdtable", &["fd"])?,
        file_private_data: btf.offset_of("file", &["private_data"])?,
        socket_file: btf.offset_of("socket", &["file"])?,
        socket_sk: btf.offset_of("socket", &["sk"])?,
        eaddrinuse: libc::EADDRINUSE as u32,
        eaddrnotavail: libc::EADDRNOTAVAIL as u32,
        net_rx_softirq: btf
            .enumerator("NET_RX_SOFTIRQ")
            .ok_or_else(|| Error::Layout("no NET_RX_SOFTIRQ in the kernel's BTF".into()))?,
        napi_poll: btf.offset_of("napi_struct", &["poll"])?,
        sd_backlog: btf.offset_of("softnet_data", &["backlog"])?,
        sd_time_squeeze: btf.offset_of("softnet_data", &["time_squeeze"])?,
        // 0 when kallsyms hides it: squeezes are then not covered (the report says so).
        process_backlog: kallsyms.address("process_backlog").unwrap_or(0),
        ..KernelLayout::default()
    };
    // A kernel whose range the programs cannot read still reports port errors, without it.
    if let Ok((off, shape)) = btf.member("net", &["ipv4", "ip_local_ports", "range"]) {
        layout.net_port_range = off;
        layout.port_range_shape = port_range_shape(shape);
    }
    // Bind buckets' sockets, for the holder of a port a bind() conflicted on: either shape.
    let or_none = |r: Result<u32, Error>| r.unwrap_or(NO_ARG);
    layout.tb_owners = or_none(btf.offset_of("inet_bind_bucket", &["owners"]));
    layout.sk_bind_node = or_none(btf.offset_of("sock_common", &["skc_bind_node"]));
    layout.tb_bhash2 = or_none(btf.offset_of("inet_bind_bucket", &["bhash2"]));
    layout.tb2_bhash_node = or_none(btf.offset_of("inet_bind2_bucket", &["bhash_node"]));
    layout.tb2_owners = or_none(btf.offset_of("inet_bind2_bucket", &["owners"]));
    // 6.1 links a socket into tb2->owners by its own sk_bind2_node; once tb->owners was gone
    // (6.x), by skc_bind_node.
    let bind2_node = btf.offset_of("sock", &["sk_bind2_node"]);
    layout.sk_bind2_node = match (bind2_node, layout.tb_owners) {
        (Ok(off), _) => off,
        (Err(_), NO_ARG) => layout.sk_bind_node,
        (Err(_), _) => NO_ARG,
    };
    let mut unavailable = Unavailable::new();
    for tp in tps {
        let slot = (tp.slot)(&mut layout);
        if tp.btf_args.is_empty() {
            // Classic only: attach_one says so for the BTF-typed tiers.
        } else {
            match btf.tracepoint_args(tp.name, tp.btf_args) {
                Ok(offs) => slot[BTF] = args(&offs),
                Err(e) => {
                    for tier in [Tier::TpBtf, Tier::RawTracepoint] {
                        unavailable.insert((tp.name, tier), e.to_string());
                    }
                }
            }
        }
        match classic_args(tracefs, tp) {
            Ok(offs) => slot[CLASSIC] = args(&offs),
            Err(e) => {
                unavailable.insert((tp.name, Tier::Tracepoint), e.to_string());
            }
        }
    }
    for f in functions {
        match function_args(btf, f) {
            Ok(slots) => *(f.slot)(&mut layout) = slots,
            Err(e) => {
                for tier in [Tier::Fentry, Tier::Kprobe] {
                    unavailable.insert((f.name, tier), e.to_string());
                }
            }
        }
    }
    Ok((layout, unavailable))
}

/// A `struct tcp_sock` time stamp the programs read as the low 32 bits of jiffies.
fn jiffies32(btf: &KernelBtf, path: &[&str]) -> Result<u32, Error> {
    match btf.member("tcp_sock", path)? {
        (off, Shape::Int { bytes: 4 }) => Ok(off),
        (_, shape) => Err(Error::Layout(format!(
            "tcp_sock.{} is {shape:?}, not a u32 of jiffies",
            path.join(".")
        ))),
    }
}

/// The registers of the first arguments, in the calling convention's order, and of the return
/// value, as `struct pt_regs` names them: where a kprobe finds what the prototype says.
#[cfg(target_arch = "x86_64")]
const ARG_REGS: &[&str] = &["di", "si", "dx", "cx", "r8", "r9"];
#[cfg(target_arch = "x86_64")]
const RET_REG: &str = "ax";
#[cfg(not(target_arch = "x86_64"))]
const ARG_REGS: &[&str] = &[];
#[cfg(not(target_arch = "x86_64"))]
const RET_REG: &str = "";

/// `f`'s arguments and return value: fentry slots, and the pt_regs offsets of their registers.
fn function_args(btf: &KernelBtf, f: &Function) -> Result<[Args; 2], Error> {
    let module_btf;
    let btf = match f.module {
        Some(m) => {
            module_btf = btf.module(m).ok_or_else(|| {
                Error::Layout(if std::path::Path::new(&format!("/sys/module/{m}")).exists() {
                    format!(
                        "{}: this kernel has no BTF for module {m} (built without \
                         CONFIG_DEBUG_INFO_BTF_MODULES), so its arguments cannot be found",
                        f.name
                    )
                } else {
                    format!("{}: module {m} is not loaded", f.name)
                })
            })?;
            &module_btf
        }
        None => btf,
    };
    let args = btf.function_args(f.name, f.args)?;
    let mut slots = [Args { off: [NO_ARG; 4] }; 2];
    for (i, pos) in args.positions.iter().enumerate() {
        let Some(pos) = *pos else { continue };
        slots[FENTRY].off[i] = (pos * 8) as u32;
        let reg = ARG_REGS.get(pos).ok_or_else(|| {
            Error::Layout(format!("{}: argument {pos} is not passed in a register here", f.name))
        })?;
        slots[KPROBE].off[i] = btf.offset_of("pt_regs", &[reg])?;
    }
    slots[FENTRY].off[RET] = (args.count * 8) as u32;
    slots[KPROBE].off[RET] = btf.offset_of("pt_regs", &[RET_REG])?;
    Ok(slots)
}

/// 6.3 packed the range into one u32 (low | high << 16); before, it was `int range[2]`.
fn port_range_shape(shape: Shape) -> u32 {
    match shape {
        Shape::Int { bytes: 4 } => port_range::PACKED_U32,
        Shape::IntArray { len: 2, bytes: 4 } => port_range::INT_PAIR,
        _ => port_range::UNKNOWN,
    }
}

fn classic_args(
    tracefs: Result<&Tracefs, &Unreadable>,
    tp: &Tracepoint,
) -> Result<Vec<u32>, Error> {
    let tracefs = tracefs.map_err(|u| Error::Tracefs(u.why.clone()))?;
    field_offsets(tp, &tracefs.format(tp.category, tp.name)?)
}

/// The offsets of `tp`'s fields in its format file (field name -> (offset, size)).
fn field_offsets(tp: &Tracepoint, format: &HashMap<String, (u32, u32)>) -> Result<Vec<u32>, Error> {
    tp.fields
        .iter()
        .enumerate()
        .map(|(i, f)| match format.get(*f) {
            Some((off, _)) => Ok(*off),
            // Marked optional in `btf_args`: the same argument, missing from both forms.
            None if tp.btf_args.get(i).is_some_and(|a| a.is_optional()) => Ok(NO_ARG),
            None => {
                Err(Error::Layout(format!("{}:{} format has no field {f}", tp.category, tp.name)))
            }
        })
        .collect()
}

fn args(offs: &[u32]) -> Args {
    let mut a = Args::default();
    a.off[..offs.len()].copy_from_slice(offs);
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::families::drops;

    #[test]
    fn a_kernel_without_drop_reasons_still_has_a_classic_kfree_skb() {
        let tp = drops::TRACEPOINTS[0];
        // 5.10's skb:kfree_skb: no reason field, no receiving socket.
        let mut format: HashMap<String, (u32, u32)> =
            [("skbaddr", (8, 8)), ("location", (16, 8)), ("protocol", (24, 2))]
                .into_iter()
                .map(|(n, v)| (n.to_owned(), v))
                .collect();
        assert_eq!(field_offsets(tp, &format).unwrap(), vec![8, 16, NO_ARG, NO_ARG]);
        format.insert("reason".into(), (28, 4));
        assert_eq!(field_offsets(tp, &format).unwrap(), vec![8, 16, 28, NO_ARG]);
        // 6.11's: the receiving socket too.
        format.insert("rx_sk".into(), (24, 8));
        format.insert("reason".into(), (36, 4));
        assert_eq!(field_offsets(tp, &format).unwrap(), vec![8, 16, 36, 24]);
        // A field that is not optional is still required.
        format.remove("location");
        let e = field_offsets(tp, &format).unwrap_err().to_string();
        assert!(e.contains("format has no field location"), "{e}");
    }
}
