//! A real Prometheus (Debian's), started with its own config and data directory, scraping one
//! target every second; stopped and its directory removed on drop, also when a test fails.

use std::{
    fs,
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};

pub struct Prometheus {
    child: Child,
    dir: PathBuf,
    /// http://127.0.0.1:PORT
    pub url: String,
}

impl Prometheus {
    /// Scrapes `target` (host:port) every second; returns once Prometheus is ready.
    pub fn start(target: &str) -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("netprobe-prometheus-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir)?;
        let config = dir.join("prometheus.yml");
        fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n  \
                 - job_name: netprobe\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )?;
        let port = free_port()?;
        let url = format!("http://127.0.0.1:{port}");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(fs::File::create(dir.join("prometheus.log"))?)
            .spawn()
            .context("starting prometheus (scripts/install-deps installs it)")?;
        let p = Self { child, dir, url };
        let ready = format!("{}/-/ready", p.url);
        let deadline = Instant::now() + Duration::from_secs(30);
        while ureq::get(&ready).call().is_err() {
            if Instant::now() > deadline {
                bail!("prometheus not ready after 30 s: {}", p.log());
            }
            thread::sleep(Duration::from_millis(100));
        }
        Ok(p)
    }

    /// The value of an instant query that returns one series, None when it returns none.
    pub fn query(&self, promql: &str) -> Result<Option<f64>> {
        let body: serde_json::Value = ureq::get(&format!("{}/api/v1/query", self.url))
            .query("query", promql)
            .call()?
            .body_mut()
            .read_json()?;
        let result = body["data"]["result"].as_array().context("a query result")?;
        match result.as_slice() {
            [] => Ok(None),
            [one] => {
                let v = one["value"][1].as_str().context("a sample value")?;
                Ok(Some(v.parse()?))
            }
            many => bail!("{promql}: {} series, expected one: {many:?}", many.len()),
        }
    }

    /// Polls `promql` until it equals `want`; the last value seen otherwise.
    pub fn wait_for(&self, promql: &str, want: f64, within: Duration) -> Result<Option<f64>> {
        let deadline = Instant::now() + within;
        loop {
            let v = self.query(promql)?;
            if v == Some(want) || Instant::now() > deadline {
                return Ok(v);
            }
            thread::sleep(Duration::from_millis(250));
        }
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A loopback port nothing listens on now.
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
