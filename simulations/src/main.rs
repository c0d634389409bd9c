//! `colony-sim`: run chaos scenarios against the colony core and print what happened.
//!
//! - `colony-sim` (no arguments): the showcase, `random-kills` with seed 1.
//! - `colony-sim run SCENARIO [--seed S | --seeds A..B] [--events FILE] [--plot FILE.svg]
//!   [--summary-json FILE] [--quiet] [--threads N]`
//! - `colony-sim list`: the scenarios and what they do.
//!
//! Exits 1 when a run breaks an invariant or misses the scenario's expectations.

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use colony_sim::batch::{default_threads, parse_seeds, run_seeds};
use colony_sim::events::Sink;
use colony_sim::summary::Summary;
use colony_sim::{plot, RunOptions, RunResult, Scenario, World};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::BufWriter;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};

/// mimalloc: the simulator allocates and frees millions of small messages per simulated
/// second, which glibc's allocator spends a fifth of the run on.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "colony-sim",
    version,
    about = "The deterministic chaos simulator of colony: whole clusters of the real core, a virtual clock, faults, and an invariant checker."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a scenario with one seed or a range of seeds.
    Run(RunArgs),
    /// List the scenarios with their descriptions.
    List,
}

#[derive(Args)]
struct RunArgs {
    /// A scenario file, or the name of one in simulations/scenarios/.
    scenario: String,
    /// The seed (default 1).
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// A range of seeds: A..B (B excluded) or A..=B. Runs in parallel with a progress bar.
    #[arg(long)]
    seeds: Option<String>,
    /// Write the event stream as JSON lines (with --seeds: of the first failing seed, or
    /// of the first seed).
    #[arg(long)]
    events: Option<PathBuf>,
    /// Draw population, primaries per host and migrations over time (SVG).
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Write the summary as one JSON object.
    #[arg(long)]
    summary_json: Option<PathBuf>,
    /// Print only the summary (and failures).
    #[arg(long)]
    quiet: bool,
    /// Worker threads for --seeds (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        None => run(RunArgs {
            scenario: "random-kills".into(),
            seed: Some(1),
            seeds: None,
            events: None,
            plot: None,
            summary_json: None,
            quiet: false,
            threads: None,
        }),
        Some(Cmd::Run(args)) => run(args),
        Some(Cmd::List) => list().map(|()| true),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("colony-sim: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn list() -> Result<()> {
    for (path, s) in Scenario::all()? {
        let file = path
            .file_stem()
            .map_or(String::new(), |f| f.to_string_lossy().into_owned());
        let tag = if s.benchmark { " [benchmark]" } else { "" };
        println!("{file:<24} {}{tag}", s.description);
    }
    Ok(())
}

/// Run one seed with everything observed.
fn observed(sc: &Scenario, seed: u64, args: &RunArgs, verbose: bool) -> Result<RunResult> {
    let sink = match &args.events {
        Some(p) => Sink::Writer(Box::new(BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        ))),
        None => Sink::None,
    };
    let opts = RunOptions {
        sink,
        plot: args.plot.is_some(),
        verbose,
    };
    let r = World::new(sc, seed, opts).run();
    if let Some(p) = &args.plot {
        let title = format!("colony-sim: {} (seed {seed})", sc.name);
        plot::draw(p, &title, &r.samples)?;
    }
    Ok(r)
}

fn run(args: RunArgs) -> Result<bool> {
    let sc = Scenario::find(&args.scenario)?;
    let results = match &args.seeds {
        None => {
            let seed = args.seed.unwrap_or(1);
            if !args.quiet {
                println!(
                    "colony-sim: scenario {} ({}), seed {seed}",
                    sc.name, sc.description
                );
            }
            let r = observed(&sc, seed, &args, !args.quiet)?;
            if !r.passed() {
                print!("{}", r.failure_report());
            }
            vec![r]
        }
        Some(range) => {
            let Some(seeds) = parse_seeds(range) else {
                bail!("--seeds must be A..B, A..=B or a number, not {range:?}");
            };
            let threads = args.threads.unwrap_or_else(default_threads);
            let bar = if args.quiet {
                ProgressBar::hidden()
            } else {
                ProgressBar::new(seeds.len() as u64)
            };
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:40}] {pos}/{len} seeds, {elapsed} elapsed, eta {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_message(format!("{}: 0 failed", sc.name));
            let failed = AtomicU64::new(0);
            let on_done = |r: &RunResult| {
                if !r.passed() {
                    let n = failed.fetch_add(1, Ordering::Relaxed) + 1;
                    let line = format!("seed {} FAILED: {}", r.seed, one_line(r));
                    if bar.is_hidden() {
                        println!("{line}");
                    } else {
                        bar.println(line);
                    }
                    bar.set_message(format!("{}: {n} failed", sc.name));
                }
                bar.inc(1);
            };
            let results = run_seeds(&sc, &seeds, threads, &on_done);
            bar.finish_and_clear();
            if let Some(first) = results.iter().find(|r| !r.passed()) {
                print!("{}", first.failure_report());
            }
            if args.events.is_some() || args.plot.is_some() {
                let seed = results
                    .iter()
                    .find(|r| !r.passed())
                    .map_or(seeds[0], |r| r.seed);
                observed(&sc, seed, &args, false)?;
                if !args.quiet {
                    println!("(events/plot written for seed {seed})");
                }
            }
            results
        }
    };
    let (summary, extra) = Summary::of(&results);
    print!("{}", summary.table(&sc.name, &extra));
    if let Some(p) = &args.summary_json {
        std::fs::write(p, summary.to_json() + "\n")
            .with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(summary.failed_seeds.is_empty())
}

fn one_line(r: &RunResult) -> String {
    match &r.failure {
        Some(f) => f.violation.to_string(),
        None => r.unmet.join("; "),
    }
}
