//! `netprobe record`: collect live into a recording file only.

use crate::{
    cli::RecordArgs,
    frames::{Frame, Frames},
    record::collect::{self, Collect},
};

/// Frames nowhere: `record` builds no report.
struct NoReport;

impl Frames for NoReport {
    fn frame(&mut self, _: &Frame) {}
}

pub async fn record(
    args: RecordArgs,
    cri_socket: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    let collect = Collect {
        selection: args.select.selection(),
        cri_socket,
        events: args.events.clone(),
        tier: args.tier,
        duration: args.duration,
        record: Some((args.output.clone(), args.max_size)),
        linklocal: args.linklocal.settings(),
    };
    if collect::live(collect, NoReport).await?.is_some() {
        eprintln!(
            "netprobe: recorded to {}; read it with `netprobe report --from {}`",
            args.output.display(),
            args.output.display()
        );
    }
    Ok(())
}
