//! A builder for one Prometheus metric family.

use prometheus::proto::{Counter as PCounter, Gauge, LabelPair, Metric, MetricFamily, MetricType};

/// One metric family under construction.
pub(super) struct Family(pub(super) MetricFamily);

impl Family {
    pub(super) fn new(name: &str, help: &str, kind: MetricType) -> Self {
        let mut f = MetricFamily::default();
        f.set_name(name.into());
        f.set_help(help.into());
        f.set_field_type(kind);
        Self(f)
    }

    pub(super) fn counter(name: &str, help: &str) -> Self {
        Self::new(name, help, MetricType::COUNTER)
    }

    pub(super) fn gauge(name: &str, help: &str) -> Self {
        Self::new(name, help, MetricType::GAUGE)
    }

    pub(super) fn metric(labels: &[(&str, &str)]) -> Metric {
        Metric::from_label(
            labels
                .iter()
                .map(|(k, v)| {
                    let mut l = LabelPair::default();
                    l.set_name((*k).into());
                    l.set_value((*v).into());
                    l
                })
                .collect(),
        )
    }

    pub(super) fn add(&mut self, labels: &[(&str, &str)], value: f64) -> &mut Self {
        let mut m = Self::metric(labels);
        if self.0.get_field_type() == MetricType::COUNTER {
            let mut c = PCounter::default();
            c.set_value(value);
            m.set_counter(c);
        } else {
            let mut g = Gauge::default();
            g.set_value(value);
            m.set_gauge(g);
        }
        self.0.mut_metric().push(m);
        self
    }

    pub(super) fn done(self, out: &mut Vec<MetricFamily>) {
        if !self.0.get_metric().is_empty() {
            out.push(self.0);
        }
    }
}
