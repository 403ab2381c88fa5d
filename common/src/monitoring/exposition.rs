//! The Prometheus text format (version 0.0.4) of the gauges the monitor refreshes: families with
//! their `# HELP` and `# TYPE` lines, label values escaped.

use std::fmt::Write as _;

/// One metric family: its name, help text and samples (label pairs, value).
pub(crate) struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: &'static str,
    pub samples: Vec<(Vec<(&'static str, String)>, f64)>,
}

impl Family {
    pub fn gauge(name: &'static str, help: &'static str) -> Self {
        Self {
            name,
            help,
            kind: "gauge",
            samples: Vec::new(),
        }
    }

    pub fn push(&mut self, labels: Vec<(&'static str, String)>, value: f64) {
        self.samples.push((labels, value));
    }

    /// Appends the family to `out`; nothing when it has no sample.
    pub fn render(&self, out: &mut String) {
        if self.samples.is_empty() {
            return;
        }
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} {}", self.name, self.kind);
        for (labels, value) in &self.samples {
            out.push_str(self.name);
            if !labels.is_empty() {
                out.push('{');
                for (i, (name, value)) in labels.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let _ = write!(out, "{name}=\"{}\"", escape(value));
                }
                out.push('}');
            }
            let _ = writeln!(out, " {value}");
        }
    }
}

/// A label value as the text format wants it: backslash, double quote and newline escaped.
pub(crate) fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped_and_empty_families_are_left_out() {
        let mut family = Family::gauge("mesh_x", "An x.");
        family.push(vec![("stream", "a\"b\\c\nd".into())], 1.5);
        let mut out = String::new();
        family.render(&mut out);
        Family::gauge("mesh_empty", "Nothing.").render(&mut out);
        assert_eq!(
            out,
            "# HELP mesh_x An x.\n# TYPE mesh_x gauge\nmesh_x{stream=\"a\\\"b\\\\c\\nd\"} 1.5\n"
        );
    }
}
