//! `netprobe report`: collect live (or read a recording) into the report builder, then print
//! or write the report.

use std::path::Path;

use crate::{
    cli::ReportArgs,
    frames::Frames,
    record::{
        collect::{self, Collect},
        file,
    },
    report::{Builder, Report},
};

pub async fn report(args: ReportArgs) -> anyhow::Result<()> {
    let report = match &args.from {
        Some(path) => replay(path, args.pod.as_deref())?,
        None => {
            let duration = args.duration.expect("clap requires --duration without --from");
            let collect = Collect {
                pod: args.pod.clone(),
                events: args.events.clone(),
                tier: args.tier,
                duration,
                record: args.record.as_ref().map(|p| (p.clone(), args.max_size)),
            };
            match collect::live(collect, Builder::default()).await? {
                Some(builder) => builder.finish(None)?,
                None => return Ok(()),
            }
        }
    };
    let body = report.render(args.format)?;
    match &args.output {
        Some(path) => std::fs::write(path, body)
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display())),
        None => {
            print!("{body}");
            Ok(())
        }
    }
}

/// Reads a recording through the same builder as a live report.
fn replay(path: &Path, pod: Option<&str>) -> anyhow::Result<Report> {
    let mut builder = Builder::default();
    for frame in file::read(path)? {
        builder.frame(&frame);
    }
    Ok(builder.finish(pod)?)
}
