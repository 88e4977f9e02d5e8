//! NET_RX softirq runs per CPU, between irq:softirq_entry and irq:softirq_exit (or the entry
//! and return of net_rx_action, the NET_RX handler itself, so no other softirq is seen), with
//! the packets napi:napi_poll reports in between. Squeezes are the CPU's own
//! softnet_data.time_squeeze, read at every run's end, each read adding what grew since the
//! last: no increment is lost even if a run's end goes unseen (the next end catches it up);
//! a run is squeezed when its end saw growth. The CPU's softnet_data is learned from its backlog NAPI
//! (embedded in it), the first time napi_poll shows it. Per-CPU state only; one record per
//! squeezed run.

use aya_ebpf::{
    helpers::bpf_ktime_get_ns,
    macros::{fentry, fexit, kprobe, kretprobe, map},
    maps::PerCpuArray,
    programs::{FEntryContext, FExitContext, ProbeContext, RetProbeContext},
};
use netprobe_common::{
    event::kind,
    softnet::{Run, SoftnetCounters, SqueezeEvent},
    stats,
};

use crate::kernel::{
    bump, field, header, offset, read, submit, tp_arg, tracepoint_tiers, LAYOUT, SAMPLES, TYPED,
};

#[map]
static SOFTNET_COUNTERS: PerCpuArray<SoftnetCounters> = PerCpuArray::with_max_entries(1, 0);

#[map]
static SOFTNET_RUN: PerCpuArray<Run> = PerCpuArray::with_max_entries(1, 0);

/// This CPU's softnet_data, once learned; 0 before.
#[map]
static SOFTNET_SD: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

tracepoint_tiers!("irq" / "softirq_entry" => on_entry:
    softnet_entry_tp_btf, softnet_entry_raw_tp, softnet_entry_tp);
tracepoint_tiers!("irq" / "softirq_exit" => on_exit:
    softnet_exit_tp_btf, softnet_exit_raw_tp, softnet_exit_tp);
tracepoint_tiers!("napi" / "napi_poll" => on_napi_poll:
    softnet_poll_tp_btf, softnet_poll_raw_tp, softnet_poll_tp);

#[fentry(function = "net_rx_action")]
pub fn softnet_rx_fentry(_ctx: FEntryContext) -> i32 {
    start_run();
    0
}

#[fexit(function = "net_rx_action")]
pub fn softnet_rx_fexit(_ctx: FExitContext) -> i32 {
    end_run();
    0
}

#[kprobe]
pub fn softnet_rx_kprobe(_ctx: ProbeContext) -> u32 {
    start_run();
    0
}

#[kretprobe]
pub fn softnet_rx_kretprobe(_ctx: RetProbeContext) -> u32 {
    end_run();
    0
}

/// Argument orders in the layout: (vec) and (napi, work).
const VEC: usize = 0;
const NAPI: usize = 0;
const WORK: usize = 1;

/// Every softirq passes here; all but NET_RX leave at once.
#[inline(always)]
fn net_rx(ctx: u64, layout: &[netprobe_common::layout::Args; 2], variant: usize) -> bool {
    tp_arg(ctx, layout, variant, VEC) as u32 as u64 == offset!(net_rx_softirq)
}

#[inline(always)]
fn on_entry(ctx: u64, variant: usize) {
    if net_rx(ctx, &LAYOUT.softirq_entry, variant) {
        start_run();
    }
}

#[inline(always)]
fn start_run() {
    let (Some(run), Some(sd)) = (SOFTNET_RUN.get_ptr_mut(0), SOFTNET_SD.get(0)) else { return };
    let run = unsafe { &mut *run };
    run.start_ns = unsafe { bpf_ktime_get_ns() };
    run.packets = 0;
    run.active = 1;
    run.covered = (*sd != 0) as u8;
}

/// What time_squeeze grew by since the last read, remembering this read.
#[inline(always)]
fn catch_up(run: &mut Run, sd: u64) -> u32 {
    let now: u32 = read(sd, offset!(sd_time_squeeze));
    let grew = now.wrapping_sub(run.last_squeeze);
    run.last_squeeze = now;
    grew
}

#[inline(always)]
fn on_napi_poll(ctx: u64, variant: usize) {
    let napi = tp_arg(ctx, &LAYOUT.napi_poll_args, variant, NAPI);
    let work = tp_arg(ctx, &LAYOUT.napi_poll_args, variant, WORK) as i32;
    let (Some(run), Some(sd)) = (SOFTNET_RUN.get_ptr_mut(0), SOFTNET_SD.get_ptr_mut(0)) else {
        return;
    };
    let (run, sd) = unsafe { (&mut *run, &mut *sd) };
    if run.active != 0 && work > 0 {
        run.packets += work as u64;
    }
    if *sd == 0 {
        let poll: u64 = if variant == TYPED {
            field(napi, offset!(napi_poll))
        } else {
            read(napi, offset!(napi_poll))
        };
        if poll == process_backlog() {
            *sd = napi - offset!(sd_backlog);
            // A squeeze ends the run right after a poll, so none has happened in this run
            // yet: reading the counter now covers the run in which it was learned.
            run.last_squeeze = read(*sd, offset!(sd_time_squeeze));
            run.covered = run.active;
        }
    }
}

#[inline(always)]
fn process_backlog() -> u64 {
    unsafe { core::ptr::read_volatile(&raw const LAYOUT.process_backlog) }
}

#[inline(always)]
fn on_exit(ctx: u64, variant: usize) {
    if net_rx(ctx, &LAYOUT.softirq_exit, variant) {
        end_run();
    }
}

#[inline(always)]
fn end_run() {
    let (Some(run), Some(sd), Some(counters)) =
        (SOFTNET_RUN.get_ptr_mut(0), SOFTNET_SD.get(0), SOFTNET_COUNTERS.get_ptr_mut(0))
    else {
        return;
    };
    let (run, sd, c) = (unsafe { &mut *run }, *sd, unsafe { &mut *counters });
    if run.active == 0 {
        return;
    }
    run.active = 0;
    let duration_ns = unsafe { bpf_ktime_get_ns() } - run.start_ns;
    c.runs += 1;
    c.packets += run.packets;
    c.busy_ns += duration_ns;
    if run.covered == 0 || sd == 0 {
        return;
    }
    c.covered_runs += 1;
    let squeezes = catch_up(run, sd);
    if squeezes == 0 {
        return;
    }
    c.squeezes += squeezes as u64;
    let Some(mut entry) = SAMPLES.reserve::<SqueezeEvent>(0) else {
        bump(stats::LOST_SAMPLES);
        return;
    };
    let ev = entry.as_mut_ptr();
    unsafe {
        (*ev).header = header(kind::SQUEEZE);
        (*ev).duration_ns = duration_ns;
        (*ev).packets = run.packets;
        (*ev).squeezes = squeezes;
        (*ev)._pad = 0;
    }
    submit(entry);
}
