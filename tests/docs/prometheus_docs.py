"""What the docs tests need to check docs/monitoring.md's Prometheus set-up without Prometheus.

Prometheus is not installed where the tests run, so its part is played by hand: the scrape
config's targets are read from the page's ``prometheus.yml`` (:func:`scrape_targets`), each one
is scraped over HTTP and parsed with prometheus_client's own parser (:data:`SCRAPE`, run inside
the "Prometheus host" namespace), and the PromQL of the page's queries and alert rules is
checked for the metric names it uses (:func:`promql_metric_names`), which must all be exported:
a rule on a name no member exports would never fire.
"""

from __future__ import annotations

import re
import textwrap
from typing import Any

import yaml

__all__ = ["PROMETHEUS_OWN", "SCRAPE", "alert_rules", "promql_metric_names", "rule_files", "scrape_targets"]

# Series Prometheus makes itself for every target, not found in any exposition.
PROMETHEUS_OWN = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})

# Run in the Prometheus host: scrape each target given as an argument, print what it exports as JSON.
SCRAPE = textwrap.dedent(
    """
    import json, sys, urllib.request
    from prometheus_client.parser import text_string_to_metric_families
    out = {}
    for target in sys.argv[1:]:
        text = urllib.request.urlopen(f"http://{target}/metrics", timeout=5).read().decode()
        names, values, state = set(), {}, None
        for family in text_string_to_metric_families(text):
            names.add(family.name)
            for s in family.samples:
                names.add(s.name)
                if not s.labels:
                    values[s.name] = s.value
                if s.name == "trizab_server_info":
                    state = s.labels["server_state"]
        out[target] = {"names": sorted(names), "values": values, "state": state}
    print(json.dumps(out))
    """
)

_PROMQL_WORDS = frozenset(
    {
        "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
        "offset", "bool",
    }
)  # fmt: skip


def scrape_targets(config_text: str, job: str) -> list[str]:
    """The ``host:port`` targets of ``job`` in a prometheus.yml (static configs)."""
    config = yaml.safe_load(config_text)
    jobs = [c for c in config["scrape_configs"] if c["job_name"] == job]
    assert len(jobs) == 1, f"one scrape config named {job!r}: {config['scrape_configs']}"
    assert jobs[0].get("metrics_path", "/metrics") == "/metrics"
    return [t for static in jobs[0]["static_configs"] for t in static["targets"]]


def rule_files(config_text: str) -> list[str]:
    """The rule files a prometheus.yml loads."""
    return list(yaml.safe_load(config_text).get("rule_files", []))


def alert_rules(rules_text: str) -> list[dict[str, Any]]:
    """The alerting rules of a Prometheus rules file, each checked for the keys Prometheus needs."""
    rules = [rule for group in yaml.safe_load(rules_text)["groups"] for rule in group["rules"]]
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
        assert isinstance(rule.get("alert"), str) and isinstance(rule.get("expr"), str), rule
        assert re.fullmatch(r"\d+[smhd]", str(rule.get("for", "0s"))), rule
    return rules


def promql_metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression (one line, maybe with a ``#`` comment) reads."""
    text = expr.split("#", 1)[0]
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range selectors
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    text = re.sub(r"(?<![\w:])\d[\w.]*", "", text)  # numbers and durations (1e3, 0.5, 5m)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][\w:]*", text):
        if not text[m.end() :].lstrip().startswith("("):  # a function call
            names.add(m.group())
    return names - _PROMQL_WORDS
