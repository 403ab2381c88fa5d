#!/usr/bin/env bash
# Checks the Prometheus alert rules (deploy/prometheus/alerts.yml) and runs their unit tests
# against sample series (alerts.test.yml), with promtool (Debian: apt-get install prometheus).
# Also checks the example scrape configuration that loads them. docs/alerts.md explains the rules.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../deploy/prometheus"

if ! command -v promtool >/dev/null; then
    echo "promtool not found: install Debian's prometheus package (apt-get install prometheus)" >&2
    exit 1
fi
promtool check rules alerts.yml
promtool test rules alerts.test.yml
promtool check config prometheus.yml
