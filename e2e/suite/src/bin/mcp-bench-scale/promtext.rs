//! Histograms and counters from a Prometheus text exposition, for the
//! operators' own reconcile metrics.
use std::collections::BTreeMap;

/// A histogram's cumulative buckets (upper bound -> count), summed over the
/// series whose labels contain every `filter` pair.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Histogram {
    pub buckets: BTreeMap<OrdF64, f64>,
}

#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct OrdF64(pub f64);
impl Eq for OrdF64 {}
#[allow(clippy::derive_ord_xor_partial_ord)]
impl Ord for OrdF64 {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&o.0)
    }
}

fn labels_match(line: &str, filter: &[(&str, &str)]) -> bool {
    filter
        .iter()
        .all(|(k, v)| line.contains(&format!("{k}=\"{v}\"")))
}

fn value(line: &str) -> Option<f64> {
    line.rsplit_once(' ')
        .and_then(|(_, v)| v.trim().parse().ok())
}

pub fn histogram(text: &str, name: &str, filter: &[(&str, &str)]) -> Histogram {
    let prefix = format!("{name}_bucket{{");
    let mut h = Histogram::default();
    for line in text.lines().filter(|l| l.starts_with(&prefix)) {
        if !labels_match(line, filter) {
            continue;
        }
        let Some(le) = line
            .split("le=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .and_then(|v| v.parse::<f64>().ok())
        else {
            continue;
        };
        if let Some(v) = value(line) {
            *h.buckets.entry(OrdF64(le)).or_default() += v;
        }
    }
    h
}

/// Sum of a counter's series (name with or without `_total`) matching `filter`.
pub fn counter(text: &str, name: &str, filter: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
        })
        .filter(|l| labels_match(l, filter))
        .filter_map(value)
        .sum()
}

impl Histogram {
    /// The observations between two scrapes.
    pub fn since(&self, earlier: &Histogram) -> Histogram {
        let buckets = self
            .buckets
            .iter()
            .map(|(le, v)| (*le, v - earlier.buckets.get(le).copied().unwrap_or(0.0)))
            .collect();
        Histogram { buckets }
    }

    pub fn count(&self) -> f64 {
        self.buckets.values().copied().fold(0.0, f64::max)
    }

    /// The q-quantile, linearly interpolated inside its bucket (as
    /// Prometheus' histogram_quantile does); None without observations.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total <= 0.0 {
            return None;
        }
        let rank = q * total;
        let (mut lo, mut below) = (0.0, 0.0);
        for (le, &cum) in &self.buckets {
            if cum >= rank {
                if le.0.is_infinite() {
                    return Some(lo);
                }
                let width = cum - below;
                let frac = if width > 0.0 {
                    (rank - below) / width
                } else {
                    1.0
                };
                return Some(lo + (le.0 - lo) * frac);
            }
            lo = le.0;
            below = cum;
        }
        Some(lo)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# TYPE x histogram
x_bucket{controller=\"a\",le=\"0.1\"} 50
x_bucket{controller=\"a\",le=\"1\"} 90
x_bucket{controller=\"a\",le=\"+Inf\"} 100
x_bucket{controller=\"b\",le=\"0.1\"} 7
x_bucket{controller=\"b\",le=\"1\"} 7
x_bucket{controller=\"b\",le=\"+Inf\"} 7
y_total{result=\"ok\"} 12
y_total{result=\"error\"} 3
";

    #[test]
    fn quantiles_interpolate_inside_the_bucket() {
        let h = histogram(TEXT, "x", &[("controller", "a")]);
        assert_eq!(h.count(), 100.0);
        assert_eq!(h.quantile(0.5), Some(0.1));
        // rank 70 of 100: halfway through the (0.1, 1] bucket.
        let p70 = h.quantile(0.7).unwrap_or_default();
        assert!((p70 - 0.55).abs() < 1e-9, "{p70}");
        // Above the last finite bound: the bound, not infinity.
        assert_eq!(h.quantile(0.99), Some(1.0));
    }

    #[test]
    fn since_subtracts_an_earlier_scrape() {
        let all = histogram(TEXT, "x", &[]);
        let b = histogram(TEXT, "x", &[("controller", "b")]);
        assert_eq!(all.since(&b).count(), 100.0);
        assert_eq!(histogram(TEXT, "x", &[]).since(&all).quantile(0.5), None);
    }

    #[test]
    fn counters_sum_matching_series() {
        assert_eq!(counter(TEXT, "y_total", &[]), 15.0);
        assert_eq!(counter(TEXT, "y_total", &[("result", "ok")]), 12.0);
        assert_eq!(counter(TEXT, "y", &[]), 0.0);
    }
}
