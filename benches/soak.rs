//! Soak: `formbridge serve` (the real binary, its own process) for an hour at a steady rate of
//! mixed deliveries with dispatch on against the GHL sandbox at GHL's real budget, sampled every
//! few seconds; writes a CSV and an SVG plot and prints figures and a verdict (memory, file
//! descriptors and threads flat; every acknowledged delivery done; 0 lost, 0 duplicated, 0 429s).
//!
//! Run: `cargo bench --bench soak` (options after `--`: `--rate 50` deliveries/s, `--duration 1h`,
//! `--sample-every 5s`, `--sources 25` (one GHL location each; the tools cycle through Jotform,
//! JivoChat, DripJobs, POWR and 123FormBuilder), `--ghl-latency 100ms` (the sandbox's answer
//! delay), `--drain-limit 5m`, `--out target/soak` (soak.csv, soak.svg), `--store-dir DIR` (where
//! the SQLite file lives; default the system temp dir), `--plot CSV` (only redraw the plot of an
//! earlier run from its CSV, with the same options as that run)). Exit status 1 when the verdict
//! fails.
//! The short pass of CI is the integration test `soak::` (a minute, deliveries checked).
#![allow(clippy::unwrap_used)]

/// The integration tests' helpers (starting the binary, config folders), shared with benches.
/// The benches' command-line options.
#[path = "support/args.rs"]
mod args;
#[path = "../tests/it/common.rs"]
#[allow(dead_code, clippy::unwrap_used)]
mod common;
#[path = "../tests/it/soak_deliveries.rs"]
mod soak_deliveries;
#[path = "../tests/it/soak_plot.rs"]
mod soak_plot;
#[path = "../tests/it/soak_report.rs"]
#[allow(dead_code)]
mod soak_report;
#[path = "../tests/it/soak_run.rs"]
mod soak_run;

use args::arg;
use std::path::PathBuf;
use std::time::Duration;

use soak_run::SoakOptions;

fn duration(name: &str, default: &str) -> Duration {
    let text = arg(name).unwrap_or_else(|| default.to_owned());
    humantime::parse_duration(&text)
        .unwrap_or_else(|e| panic!("{name} {text}: not a duration like 90s or 1h ({e})"))
}

fn number<T: std::str::FromStr>(name: &str, default: T) -> T {
    match arg(name) {
        None => default,
        Some(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name} {v}: not a number")),
    }
}

#[tokio::main]
async fn main() {
    let opts = SoakOptions {
        rate: number("--rate", 50.0),
        duration: duration("--duration", "1h"),
        sample_every: duration("--sample-every", "5s"),
        sources: number("--sources", 25usize).max(1),
        ghl_latency: duration("--ghl-latency", "100ms"),
        drain_limit: duration("--drain-limit", "5m"),
        store_dir: arg("--store-dir").map(PathBuf::from),
    };
    let out = PathBuf::from(
        arg("--out")
            .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/target/soak").to_owned()),
    );
    std::fs::create_dir_all(&out).expect("create the output directory");
    let title = format!(
        "formbridge soak (cargo bench --bench soak)\n{} deliveries/s for {} to {} sources (Jotform, JivoChat, DripJobs, POWR, 123FormBuilder in turn), one GHL location each; dispatch on\nGHL sandbox at GHL's budget (100 requests per location per 10 s), {} ms answer delay; SQLite store",
        opts.rate,
        humantime::format_duration(opts.duration),
        opts.sources,
        opts.ghl_latency.as_millis()
    );
    if let Some(csv) = arg("--plot") {
        // Redraw the plot of an earlier run from its CSV (sending time: --duration).
        let samples = soak_report::read_csv(std::path::Path::new(&csv)).expect("read the CSV");
        let svg = out.join("soak.svg");
        soak_plot::write_svg(&samples, opts.duration.as_secs_f64(), &title, &svg)
            .expect("write the SVG");
        println!("plot: {}", svg.display());
        return;
    }
    println!("{}", title.replace('\n', "; "));
    println!(
        "binary: {} (FORMBRIDGE_TEST_BIN, else the one cargo built)",
        common::formbridge_bin().display()
    );
    let outcome = soak_run::run(&opts).await;
    let csv = out.join("soak.csv");
    let svg = out.join("soak.svg");
    soak_report::write_csv(&outcome.samples, &csv).expect("write the CSV");
    soak_plot::write_svg(&outcome.samples, outcome.load_secs, &title, &svg).expect("write the SVG");
    println!(
        "samples: {} ({}), plot: {}",
        outcome.samples.len(),
        csv.display(),
        svg.display()
    );
    for line in soak_report::figures(&outcome) {
        println!("- {line}");
    }
    let verdict = soak_report::verdict(&outcome);
    verdict.print();
    if !verdict.passed() {
        std::process::exit(1);
    }
}
