//! The last hour of the monitor's figures, for the console's plots: every
//! ten seconds the finished ten-second slice of this monitor's windows is
//! reduced to a point (login success rate, error rate, latency
//! percentiles, events per second, permission denials) in a ring of
//! fixed size. Reading the hour is a copy of at most 360 points.

use super::rules::Metric;
use super::window::Windows;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::Mutex;

/// Seconds one point covers.
pub const STEP: u64 = 10;
/// Points kept: one hour.
pub const POINTS: usize = 360;

/// The series each point carries, in order.
pub const SERIES: [Series; 7] = [
    Series::of("success_rate", Metric::SuccessRate),
    Series::of("error_rate", Metric::ErrorRate),
    Series::of("latency_p50_ms", Metric::LatencyP50Ms),
    Series::of("latency_p95_ms", Metric::LatencyP95Ms),
    Series::of("latency_p99_ms", Metric::LatencyP99Ms),
    Series::of("events_per_second", Metric::Events),
    Series::of("permission_denial_rate", Metric::PermissionDenialRate),
];

#[derive(Debug, Clone, Copy)]
pub struct Series {
    pub name: &'static str,
    pub metric: Metric,
}

impl Series {
    const fn of(name: &'static str, metric: Metric) -> Series {
        Series { name, metric }
    }
}

/// One slice: its last second, and each series' value (`None`: nothing
/// to compute it from).
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Point {
    /// The slice's last second (Unix time).
    pub t: u64,
    /// One value per series (`null`: nothing to compute it from).
    #[schema(value_type = Vec<Option<f64>>)]
    pub values: [Option<f64>; SERIES.len()],
}

#[derive(Default)]
pub struct Trend {
    points: Mutex<VecDeque<Point>>,
}

impl Trend {
    /// Adds the slices finished by second `now` that are not in yet.
    pub fn update(&self, windows: &Windows, now: u64) {
        let last_done = now - now % STEP;
        let mut points = self.points.lock().expect("trend");
        let mut next = points
            .back()
            .map(|p| p.t + STEP)
            .unwrap_or(last_done)
            // No slice older than the windows still hold.
            .max(last_done.saturating_sub((super::window::SLOTS as u64 / STEP - 1) * STEP));
        while next <= last_done && next > 0 {
            let totals = windows.totals(next, STEP);
            let mut values = [None; SERIES.len()];
            for (value, series) in values.iter_mut().zip(SERIES) {
                *value = match series.metric {
                    Metric::Events => Some(totals.events() as f64 / STEP as f64),
                    metric => metric.value(&totals).0,
                };
            }
            if points.len() == POINTS {
                points.pop_front();
            }
            points.push_back(Point { t: next, values });
            next += STEP;
        }
    }

    /// The points of the last hour, oldest first.
    pub fn points(&self) -> Vec<Point> {
        self.points.lock().expect("trend").iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::Kind;

    #[test]
    fn each_slice_becomes_one_point_and_the_ring_keeps_an_hour() {
        let windows = Windows::default();
        let shard = windows.shard();
        for s in 991..=1000 {
            shard.record(s, Kind::AuthAttempt, s % 2 == 0, Some(2_000));
        }
        let trend = Trend::default();
        trend.update(&windows, 1005);
        let points = trend.points();
        assert_eq!(points.len(), 1);
        assert_eq!(points[0].t, 1000);
        assert_eq!(points[0].values[0], Some(0.5), "success rate");
        assert_eq!(points[0].values[5], Some(1.0), "events per second");
        assert!(points[0].values[2].is_some_and(|ms| (1.5..2.5).contains(&ms)));
        trend.update(&windows, 1009);
        assert_eq!(trend.points().len(), 1, "the next slice is not done");
        trend.update(&windows, 1000 + 10 * POINTS as u64 * 2);
        let points = trend.points();
        assert!(points.len() <= POINTS);
        // After a long quiet gap, only what the windows still hold.
        assert_eq!(
            points.len(),
            1 + crate::monitor::window::SLOTS / STEP as usize
        );
        let n = points.len();
        assert_eq!(points[n - 1].t - points[n - 2].t, STEP);
        assert_eq!(points[n - 1].values[5], Some(0.0));
    }
}
