//! PNG plots drawn with `plotters` (bitmap backend, embedded DejaVu font: no system fonts needed).

use crate::error::{Error, Result};
use diffsamp_metrics::SortedFinite;
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

const FONT: &str = "sans-serif";

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The embedded font is valid TrueType; a failure here would be a packaging bug.
        plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular())
            .unwrap_or_else(|_| panic!("embedded DejaVu font failed to load"));
    });
}

/// One named data series of a plot.
pub struct Series<'a> {
    pub label: &'a str,
    pub values: &'a [f64],
}

const COLORS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
];

fn plot_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Plot {
        path: path.to_path_buf(),
        why: e.to_string(),
    }
}

fn finite_range(series: &[Series], clip_quantile: f64) -> Option<(f64, f64)> {
    let all = SortedFinite::new(series.iter().flat_map(|s| s.values.iter().copied()));
    let (lo, hi) = (
        all.nearest(clip_quantile)?,
        all.nearest(1.0 - clip_quantile)?,
    );
    let pad = ((hi - lo) * 0.05).max(1e-9);
    Some((lo - pad, hi + pad))
}

/// Density histograms of several series on common bins, drawn as step lines.
/// The x range spans the 0.5%–99.5% quantiles of all values (outliers do not squash the plot).
pub fn histogram_overlay(
    path: &Path,
    title: &str,
    x_label: &str,
    series: &[Series],
    bins: usize,
) -> Result<()> {
    register_font();
    let (lo, hi) = finite_range(series, 0.005).ok_or_else(|| plot_err(path, "no finite values"))?;
    let width = (hi - lo) / bins as f64;
    let densities: Vec<Vec<f64>> = series
        .iter()
        .map(|s| {
            let mut c = vec![0.0; bins];
            for &v in s.values.iter().filter(|v| v.is_finite()) {
                let k = ((v - lo) / width).floor();
                if k >= 0.0 && (k as usize) < bins {
                    c[k as usize] += 1.0;
                }
            }
            let norm = s.values.len().max(1) as f64 * width;
            c.iter().map(|x| x / norm).collect()
        })
        .collect();
    let ymax = densities
        .iter()
        .flatten()
        .copied()
        .fold(0.0, f64::max)
        .max(1e-12)
        * 1.1;

    let lines: Vec<(String, Vec<(f64, f64)>)> = series
        .iter()
        .zip(&densities)
        .map(|(s, d)| {
            let mut pts = Vec::with_capacity(2 * bins + 2);
            pts.push((lo, 0.0));
            for (k, &y) in d.iter().enumerate() {
                pts.push((lo + k as f64 * width, y));
                pts.push((lo + (k + 1) as f64 * width, y));
            }
            pts.push((hi, 0.0));
            (format!("{} (n={})", s.label, s.values.len()), pts)
        })
        .collect();
    line_chart(
        path,
        title,
        (x_label, "density"),
        (lo..hi, 0.0..ymax),
        lines,
    )
}

/// Labelled lines (one colour each, with a legend) on an 800×560 chart with the given axis
/// descriptions and ranges.
fn line_chart(
    path: &Path,
    title: &str,
    (x_label, y_label): (&str, &str),
    (x_range, y_range): (std::ops::Range<f64>, std::ops::Range<f64>),
    lines: Vec<(String, Vec<(f64, f64)>)>,
) -> Result<()> {
    let root = BitMapBackend::new(path, (800, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 24))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(x_range, y_range)
        .map_err(|e| plot_err(path, e))?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .label_style((FONT, 14))
        .draw()
        .map_err(|e| plot_err(path, e))?;
    for (i, (label, pts)) in lines.into_iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))
            .map_err(|e| plot_err(path, e))?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .label_font((FONT, 14))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| plot_err(path, e))?;
    root.present().map_err(|e| plot_err(path, e))?;
    Ok(())
}

/// Line plots of per-step traces (series k's i-th value at step i + 1) on common axes, the y
/// axis from 0 to `y_max` (e.g. the ESS fraction of each SMC stage against its step).
pub fn traces(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    y_max: f64,
) -> Result<()> {
    register_font();
    let steps = series.iter().map(|s| s.values.len()).max().unwrap_or(0);
    if steps == 0 {
        return Err(plot_err(path, "no values"));
    }
    if !(y_max.is_finite() && y_max > 0.0) {
        return Err(plot_err(path, format!("y range [0, {y_max}] is empty")));
    }
    let lines = series
        .iter()
        .map(|s| {
            let pts = s
                .values
                .iter()
                .enumerate()
                .filter(|(_, v)| v.is_finite())
                .map(|(k, &v)| ((k + 1) as f64, v.clamp(0.0, y_max)))
                .collect();
            (s.label.to_string(), pts)
        })
        .collect();
    line_chart(
        path,
        title,
        (x_label, y_label),
        (0.0..steps as f64 + 1.0, 0.0..y_max),
        lines,
    )
}

/// Axes of a [`scatter_2d`] plot. The default has no labels and fits the extent to the data.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Axes2d<'a> {
    /// (x, y) axis labels; none drawn when `None`.
    pub labels: Option<(&'a str, &'a str)>,
    /// The common extent [lo, hi] of both axes (points outside are not drawn); when `None`,
    /// the 0.1%–99.9% quantiles of all values, padded by 5%.
    pub range: Option<(f64, f64)>,
}

impl<'a> Axes2d<'a> {
    /// Axes of two angles on the torus: labelled `x` and `y`, each spanning [−π, π].
    pub fn angles(x: &'a str, y: &'a str) -> Self {
        Self {
            labels: Some((x, y)),
            range: Some((-std::f64::consts::PI, std::f64::consts::PI)),
        }
    }
}

/// Side-by-side scatter plots of 2-D samples (`[n, 2]` row-major each) on a shared extent,
/// with optional marked points (e.g. mixture means); `axes` gives labels and a fixed extent.
pub fn scatter_2d(
    path: &Path,
    title: &str,
    panels: &[Series],
    marks: Option<&[f64]>,
    axes: Axes2d,
) -> Result<()> {
    register_font();
    let xs: Vec<Series> = panels
        .iter()
        .map(|p| Series {
            label: p.label,
            values: p.values,
        })
        .collect();
    let (lo, hi) = match axes.range {
        Some((lo, hi)) if lo < hi => (lo, hi),
        Some(r) => return Err(plot_err(path, format!("empty axis range {r:?}"))),
        None => finite_range(&xs, 0.001).ok_or_else(|| plot_err(path, "no finite values"))?,
    };
    let inside = |q: &[f64]| {
        q.iter()
            .all(|v| v.is_finite() && (axes.range.is_none() || (lo..=hi).contains(v)))
    };
    let root = BitMapBackend::new(path, (520 * panels.len() as u32, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
    let root = root
        .titled(title, (FONT, 24))
        .map_err(|e| plot_err(path, e))?;
    for (i, (area, p)) in root
        .split_evenly((1, panels.len()))
        .iter()
        .zip(panels)
        .enumerate()
    {
        let mut chart = ChartBuilder::on(area)
            .caption(
                format!("{} (n={})", p.label, p.values.len() / 2),
                (FONT, 18),
            )
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(44)
            .build_cartesian_2d(lo..hi, lo..hi)
            .map_err(|e| plot_err(path, e))?;
        let mut mesh = chart.configure_mesh();
        mesh.label_style((FONT, 12));
        if let Some((x, y)) = axes.labels {
            mesh.x_desc(x).y_desc(y).axis_desc_style((FONT, 16));
        }
        mesh.draw().map_err(|e| plot_err(path, e))?;
        let color = COLORS[i % COLORS.len()].mix(0.35);
        chart
            .draw_series(
                p.values
                    .chunks_exact(2)
                    .filter(|q| inside(q))
                    .map(|q| Circle::new((q[0], q[1]), 2, color.filled())),
            )
            .map_err(|e| plot_err(path, e))?;
        if let Some(m) = marks {
            chart
                .draw_series(
                    m.chunks_exact(2)
                        .filter(|q| inside(q))
                        .map(|q| Cross::new((q[0], q[1]), 4, BLACK.stroke_width(1))),
                )
                .map_err(|e| plot_err(path, e))?;
        }
    }
    root.present().map_err(|e| plot_err(path, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_png_files() {
        let dir = std::env::temp_dir().join(format!("diffsamp-plots-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a: Vec<f64> = (0..1000).map(|i| (i as f64 * 0.37).sin()).collect();
        let b: Vec<f64> = (0..1000).map(|i| (i as f64 * 0.11).cos() * 1.2).collect();
        let h = dir.join("h.png");
        histogram_overlay(
            &h,
            "t",
            "E",
            &[
                Series {
                    label: "a",
                    values: &a,
                },
                Series {
                    label: "b",
                    values: &b,
                },
            ],
            40,
        )
        .unwrap();
        let s = dir.join("s.png");
        scatter_2d(
            &s,
            "t",
            &[Series {
                label: "a",
                values: &a,
            }],
            Some(&[0.0, 0.0]),
            Axes2d::default(),
        )
        .unwrap();
        // Torus axes: labelled angles on [−π, π]; points beyond the range are left out.
        let t = dir.join("t.png");
        let mut angles: Vec<f64> = a.iter().map(|v| 3.0 * v).collect();
        angles.extend([4.0, -4.0, f64::NAN, 0.0]);
        scatter_2d(
            &t,
            "t",
            &[Series {
                label: "a",
                values: &angles,
            }],
            None,
            Axes2d::angles("φ", "ψ"),
        )
        .unwrap();
        let l = dir.join("l.png");
        traces(
            &l,
            "t",
            "step",
            "ESS",
            &[
                Series {
                    label: "a",
                    values: &[1.0, 0.5, f64::NAN, 0.7],
                },
                Series {
                    label: "b",
                    values: &[0.9],
                },
            ],
            1.0,
        )
        .unwrap();
        let no_values = traces(&dir.join("e.png"), "t", "x", "y", &[], 1.0).unwrap_err();
        assert!(no_values.to_string().contains("no values"), "{no_values}");
        let empty_range = traces(
            &dir.join("e.png"),
            "t",
            "x",
            "y",
            &[Series {
                label: "a",
                values: &[1.0],
            }],
            0.0,
        )
        .unwrap_err();
        assert!(empty_range.to_string().contains("empty"), "{empty_range}");
        for p in [h, s, t, l] {
            let bytes = std::fs::read(&p).unwrap();
            assert_eq!(&bytes[1..4], b"PNG", "{}", p.display());
        }
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn angle_axes_span_the_torus() {
        let a = Axes2d::angles("φ", "ψ");
        assert_eq!(a.labels, Some(("φ", "ψ")));
        assert_eq!(a.range, Some((-std::f64::consts::PI, std::f64::consts::PI)));
        assert_eq!(Axes2d::default().range, None);
        let p = std::env::temp_dir().join("diffsamp-never-2d.png");
        let empty = Axes2d {
            range: Some((1.0, 1.0)),
            ..a
        };
        let panel = [Series {
            label: "a",
            values: &[0.0, 0.0],
        }];
        assert!(scatter_2d(&p, "t", &panel, None, empty).is_err());
    }

    #[test]
    fn empty_input_is_an_error() {
        let p = std::env::temp_dir().join("diffsamp-never.png");
        assert!(histogram_overlay(
            &p,
            "t",
            "E",
            &[Series {
                label: "a",
                values: &[f64::NAN]
            }],
            10
        )
        .is_err());
    }
}
