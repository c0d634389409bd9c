//! `--plot FILE.svg`: what the colonies did over a run, sampled once per simulated
//! second — their population (in-sync replicas per colony, a storage node's copy
//! counting for two: minimum, mean, the target, and how many colonies are under it), primaries per host, and cumulative migrations,
//! clones and promotions.

use crate::view::ClusterView;
use anyhow::{anyhow, Result};
use colony::core::types::HostId;
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;

/// One second of a run.
#[derive(Clone, Debug)]
pub struct Sample {
    pub t_s: f64,
    pub target: u32,
    pub min_population: u32,
    pub mean_population: f64,
    pub under_replicated: u32,
    /// Primaries per live host.
    pub primaries: Vec<(HostId, u32)>,
    pub migrations: u64,
    pub clones: u64,
    pub promotions: u64,
}

impl Sample {
    pub fn take(
        t_s: f64,
        view: &ClusterView,
        target: u32,
        live: &[HostId],
        counts: (u64, u64, u64),
    ) -> Sample {
        let pops: Vec<u32> = view.colonies.iter().map(|c| c.population()).collect();
        let mut per_host: BTreeMap<HostId, u32> = live.iter().map(|h| (*h, 0)).collect();
        for c in &view.colonies {
            for p in &c.primaries {
                *per_host.entry(p.host).or_insert(0) += 1;
            }
        }
        Sample {
            t_s,
            target,
            min_population: pops.iter().copied().min().unwrap_or(0),
            mean_population: pops.iter().map(|p| f64::from(*p)).sum::<f64>()
                / pops.len().max(1) as f64,
            under_replicated: pops.iter().filter(|p| **p < target).count() as u32,
            primaries: per_host.into_iter().collect(),
            migrations: counts.0,
            clones: counts.1,
            promotions: counts.2,
        }
    }
}

/// A named, coloured line computed from each sample.
type Line = (&'static str, RGBColor, fn(&Sample) -> f64);
/// A named, coloured statistic over the hosts' primary counts.
type Stat = (&'static str, RGBColor, fn(&[u32]) -> f64);

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("plot: {e:?}")
}

/// Draw the samples as an SVG file.
pub fn draw(path: &Path, title: &str, samples: &[Sample]) -> Result<()> {
    let t_max = samples.last().map_or(1.0, |s| s.t_s).max(1.0);
    let root = SVGBackend::new(path, (1100, 1300)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let root = root.titled(title, ("sans-serif", 22)).map_err(err)?;
    let panels = root.split_evenly((4, 1));

    // 1. Population.
    // A population can pass the target for a moment (a storage node's copy counts twice).
    let y_max = samples
        .iter()
        .map(|s| f64::from(s.target).max(s.mean_population.ceil()))
        .reduce(f64::max)
        .unwrap_or(3.0)
        + 1.0;
    let mut chart = ChartBuilder::on(&panels[0])
        .caption(
            "in-sync replicas per colony (a storage node's copy counts 2)",
            ("sans-serif", 16),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(45)
        .build_cartesian_2d(0.0..t_max, 0.0..y_max)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("simulated s")
        .draw()
        .map_err(err)?;
    let series: [Line; 3] = [
        ("target min(N, feasible)", BLACK, |s| f64::from(s.target)),
        ("mean", BLUE, |s| s.mean_population),
        ("min", RED, |s| f64::from(s.min_population)),
    ];
    for (name, color, f) in series {
        chart
            .draw_series(LineSeries::new(
                samples.iter().map(|s| (s.t_s, f(s))),
                color,
            ))
            .map_err(err)?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    legend(&mut chart)?;

    // 2. Under-replicated colonies.
    let u_max = samples
        .iter()
        .map(|s| s.under_replicated)
        .max()
        .unwrap_or(0) as f64
        + 1.0;
    let mut chart = ChartBuilder::on(&panels[1])
        .caption("colonies under target", ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(45)
        .build_cartesian_2d(0.0..t_max, 0.0..u_max)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("simulated s")
        .draw()
        .map_err(err)?;
    chart
        .draw_series(LineSeries::new(
            samples
                .iter()
                .map(|s| (s.t_s, f64::from(s.under_replicated))),
            RED,
        ))
        .map_err(err)?;

    // 3. Primaries per host.
    let hosts: Vec<HostId> = {
        let mut all: Vec<HostId> = samples
            .iter()
            .flat_map(|s| s.primaries.iter().map(|(h, _)| *h))
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    };
    let p_max = samples
        .iter()
        .flat_map(|s| s.primaries.iter().map(|(_, n)| *n))
        .max()
        .unwrap_or(1) as f64
        + 1.0;
    let mut chart = ChartBuilder::on(&panels[2])
        .caption("primaries per host", ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(45)
        .build_cartesian_2d(0.0..t_max, 0.0..p_max)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("simulated s")
        .draw()
        .map_err(err)?;
    let of = |s: &Sample, h: HostId| -> f64 {
        s.primaries
            .binary_search_by_key(&h, |(x, _)| *x)
            .map_or(0.0, |i| f64::from(s.primaries[i].1))
    };
    if hosts.len() <= 24 {
        for (i, h) in hosts.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(
                    samples.iter().map(|s| (s.t_s, of(s, *h))),
                    color,
                ))
                .map_err(err)?
                .label(format!("host {h}"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
    } else {
        let stats: [Stat; 3] = [
            ("max", RED, |v| v.iter().copied().max().unwrap_or(0) as f64),
            ("mean", BLUE, |v| {
                v.iter().map(|x| f64::from(*x)).sum::<f64>() / v.len().max(1) as f64
            }),
            ("min", GREEN, |v| {
                v.iter().copied().min().unwrap_or(0) as f64
            }),
        ];
        for (name, color, f) in stats {
            chart
                .draw_series(LineSeries::new(
                    samples.iter().map(|s| {
                        let v: Vec<u32> = s.primaries.iter().map(|(_, n)| *n).collect();
                        (s.t_s, f(&v))
                    }),
                    color,
                ))
                .map_err(err)?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
    }
    legend(&mut chart)?;

    // 4. Cumulative moves.
    let m_max = samples
        .last()
        .map_or(1, |s| s.migrations.max(s.clones).max(s.promotions)) as f64
        + 1.0;
    let mut chart = ChartBuilder::on(&panels[3])
        .caption(
            "cumulative migrations, clones, promotions",
            ("sans-serif", 16),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(45)
        .build_cartesian_2d(0.0..t_max, 0.0..m_max)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("simulated s")
        .draw()
        .map_err(err)?;
    let moves: [Line; 3] = [
        ("migrations", BLUE, |s| s.migrations as f64),
        ("clones", GREEN, |s| s.clones as f64),
        ("promotions", RED, |s| s.promotions as f64),
    ];
    for (name, color, f) in moves {
        chart
            .draw_series(LineSeries::new(
                samples.iter().map(|s| (s.t_s, f(s))),
                color,
            ))
            .map_err(err)?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    legend(&mut chart)?;
    root.present().map_err(err)?;
    Ok(())
}

fn legend<'a, DB: DrawingBackend + 'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(err)
}
