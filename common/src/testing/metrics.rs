//! The Prometheus text format as tests read it: a scraped `/metrics` page parsed into samples,
//! looked up by metric name and labels (in any order).

use std::collections::BTreeMap;

/// One parsed `/metrics` page.
#[derive(Debug, Clone)]
pub struct Exposition {
    pub text: String,
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl Exposition {
    /// Parses a page; panics on a line that is not a comment, a blank or a sample (the format
    /// is part of what tests check).
    pub fn parse(text: &str) -> Self {
        let samples = text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|line| parse_sample(line).unwrap_or_else(|| panic!("bad sample line: {line}")))
            .collect();
        Self {
            text: text.to_owned(),
            samples,
        }
    }

    /// `GET {base_url}/metrics`, asserting 200, parsed.
    pub async fn scrape(base_url: &str) -> Self {
        let response = reqwest::get(format!("{base_url}/metrics"))
            .await
            .expect("GET /metrics");
        assert_eq!(response.status(), 200, "GET /metrics");
        Self::parse(&response.text().await.expect("metrics body"))
    }

    /// The value of the sample `name` whose labels are exactly `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.samples
            .iter()
            .find(|(n, l, _)| n == name && *l == want)
            .map(|(_, _, v)| *v)
    }

    /// Every sample named `name`, with its labels.
    pub fn samples(&self, name: &str) -> Vec<(BTreeMap<String, String>, f64)> {
        self.samples
            .iter()
            .filter(|(n, ..)| n == name)
            .map(|(_, l, v)| (l.clone(), *v))
            .collect()
    }
}

/// `name{a="x",b="y"} value` (labels optional; escapes `\\`, `\"`, `\n` in values).
fn parse_sample(line: &str) -> Option<(String, BTreeMap<String, String>, f64)> {
    let (series, value) = line.rsplit_once(' ')?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    let Some((name, rest)) = series.split_once('{') else {
        return Some((series.to_owned(), BTreeMap::new(), value));
    };
    let body = rest.strip_suffix('}')?;
    let mut labels = BTreeMap::new();
    let mut chars = body.chars().peekable();
    loop {
        let label: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if label.is_empty() {
            break;
        }
        if chars.next()? != '"' {
            return None;
        }
        let mut value = String::new();
        loop {
            match chars.next()? {
                '"' => break,
                '\\' => match chars.next()? {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                c => value.push(c),
            }
        }
        labels.insert(label.trim_start_matches(',').to_owned(), value);
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    Some((name.to_owned(), labels, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_found_by_name_and_labels_in_any_order() {
        let page = Exposition::parse(
            "# HELP x An x.\n# TYPE x gauge\nx{b=\"2\",a=\"q\\\"{,}\"} 3.5\ny 7\nz_bucket{le=\"+Inf\"} 4\n",
        );
        assert_eq!(page.value("x", &[("a", "q\"{,}"), ("b", "2")]), Some(3.5));
        assert_eq!(page.value("y", &[]), Some(7.0));
        assert_eq!(page.value("z_bucket", &[("le", "+Inf")]), Some(4.0));
        assert_eq!(page.value("x", &[("a", "q")]), None);
    }
}
