//! `netprobe report`: collect live (or read a recording) into the report builder, then print
//! or write the report.

use std::{path::Path, time::Duration};

use anyhow::Context;

use crate::{
    cli::ReportArgs,
    frames::Frames,
    record::{
        collect::{self, Collect},
        file,
    },
    report::{Builder, Report},
};

pub async fn report(
    args: ReportArgs,
    cri_socket: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    let report = match (&args.from, &args.agent) {
        (Some(path), _) => replay(file::read(path)?, &args)?,
        (None, Some(url)) => {
            let token = args.api_token_file.as_deref().map(std::fs::read_to_string).transpose()?;
            let bytes = fetch(url, args.window, token.as_deref().map(str::trim))?;
            let frames = file::read_bytes(&bytes, Path::new(url))?;
            replay(frames, &args)?
        }
        (None, None) => {
            let duration = args.duration.expect("clap requires --duration without --from");
            let collect = Collect {
                selection: args.select.selection(),
                cri_socket,
                events: args.events.clone(),
                tier: args.tier,
                duration,
                record: args.record.as_ref().map(|p| (p.clone(), args.max_size)),
                linklocal: args.linklocal.settings(),
            };
            match collect::live(collect, builder(&args)).await? {
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

/// A recording of the agent's last `window`.
fn fetch(url: &str, window: Duration, token: Option<&str>) -> anyhow::Result<Vec<u8>> {
    let url = format!("{}/api/v1/record?window={}s", url.trim_end_matches('/'), window.as_secs());
    let mut request = ureq::get(&url);
    if let Some(t) = token {
        request = request.header("Authorization", &format!("Bearer {t}"));
    }
    let config = request.config().http_status_as_error(false).build();
    let mut response = config.call().with_context(|| format!("asking the agent at {url}"))?;
    let status = response.status();
    let body = response.body_mut().with_config().limit(512 << 20).read_to_vec()?;
    if !status.is_success() {
        let said = String::from_utf8_lossy(&body);
        anyhow::bail!("the agent at {url} answered {status}: {}", said.trim());
    }
    Ok(body)
}

/// Reads a recording through the same builder as a live report.
fn replay(frames: Vec<crate::frames::Frame>, args: &ReportArgs) -> anyhow::Result<Report> {
    let mut builder = builder(args);
    for frame in frames {
        builder.frame(&frame);
    }
    Ok(builder.finish(args.select.pod.as_deref())?)
}

fn builder(args: &ReportArgs) -> Builder {
    Builder::default().idle_reset_min(args.idle_reset_min)
}
