"""The Prometheus endpoint: ZooKeeper's ``PrometheusMetricsProvider`` for trizab, with prometheus_client.

Theory of operation
-------------------
``metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider``
serves ``GET /metrics`` on ``metricsProvider.httpHost:httpPort`` (trizab binds
127.0.0.1 unless told otherwise; ZooKeeper 0.0.0.0) through
:func:`~trizab.runtime.http_server.serve_http`, a task of the server's nursery.
A scrape runs :class:`ServerCollector` on the event loop's thread, between two
of the core task's batches, so what it reads of the core is consistent; nothing
here runs in another thread.

Names and types are ZooKeeper 3.8's, so dashboards built for it work:

* every numeric ``mntr`` key (:func:`~trizab.frontend.fourletter.mntr_rows`, the
  same rows ``mntr`` prints, so the two cannot drift) becomes a gauge under its
  name without ``zk_``, as ZooKeeper's ``registerGauge`` calls export them
  (``znode_count``, ``watch_count``, ``num_alive_connections``, ``avg_latency``,
  ``quorum_size``, ``synced_followers`` ...);
* ZooKeeper's summaries (``ServerMetrics``: ``readlatency``, ``updatelatency``,
  ``fsynctime``, ``snapshottime``, ``election_time``) are Prometheus summaries with
  ZooKeeper's quantiles (0.5, 0.9 and 0.99 for the detailed ones, the median for
  the others) over the last ten minutes, ``_count`` and ``_sum``; ``mntr`` prints the
  same :class:`~trizab.server.distribution.Distribution` as ``avg_/min_/max_/cnt_/sum_``;
* trizab's own are prefixed ``trizab_``: the group-commit batch size (a summary),
  the storage engine (an info metric) and its statistics (the fsync helpers'
  state), whether barriers run in a thread (the slow-disk rule), the disk-full
  state, and ``trizab_server_info`` (version and role, which ``mntr`` prints as text).

``metricsProvider.exportJvmInfo`` (default true) exports the Python process's
facts instead of the JVM's: prometheus_client's process, platform and gc
collectors (``process_*``, ``python_info``, ``python_gc_*``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import trio
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from trizab import config as cfg
from trizab.frontend import fourletter
from trizab.runtime.admin import Admin
from trizab.runtime.disk import Disk
from trizab.runtime.http_server import HttpResponse, serve_http
from trizab.server.distribution import Distribution

__all__ = ["ServerCollector", "metrics_registry", "serve_metrics", "summary_family"]

# Engine statistics that only grow (exported as counters); the others are gauges.
_STORAGE_COUNTERS = frozenset({"txns", "syncs", "fsyncs", "bytes", "fsync_seconds", "segments"})
# The mntr keys of a summary (DefaultMetricsProvider's), exported as the summary itself.
_MNTR_PREFIXES = ("avg_", "min_", "max_", "cnt_", "sum_", "p50_", "p95_", "p99_", "p999_")

PLAIN = "text/plain; charset=utf-8"


def summary_family(d: Distribution, now: float) -> Metric:
    """``d`` as ZooKeeper's Prometheus provider exports a Summary: quantiles, _count, _sum."""
    family = Metric(d.name, d.name, "summary")
    for q, value in d.quantiles(now):
        family.add_sample(d.name, {"quantile": str(q)}, value)
    family.add_sample(d.name + "_count", {}, float(d.count))
    family.add_sample(d.name + "_sum", {}, float(d.total))
    return family


class ServerCollector(Collector):
    """One server's metrics, read from their owners at each scrape (see the module docstring)."""

    def __init__(
        self,
        admin: Admin,
        disk: Disk,
        engine_name: str,
        *,
        own_summaries: Callable[[], Sequence[Distribution]] = lambda: (),
    ) -> None:
        self.admin = admin
        self.disk = disk
        self.engine_name = engine_name
        self.own_summaries = own_summaries

    def collect(self) -> Iterable[Metric]:
        admin = self.admin
        if admin.core is None:  # still recovering: nothing of the server to show yet
            return
        now = admin.clock.monotonic()
        summaries = list(admin.summaries())
        snapshot = admin.snapshot()
        as_summaries = {f"{p}{d.name}" for d in summaries for p in _MNTR_PREFIXES}
        for key, value in fourletter.mntr_rows(snapshot):
            name = key.removeprefix("zk_")
            # Text (version, server_state) is in trizab_server_info, and ZooKeeper exports no
            # true/false (read_only); a summary's rows are exported as the summary, below.
            if isinstance(value, bool) or not isinstance(value, int | float) or name in as_summaries:
                continue
            yield GaugeMetricFamily(name, name, value=value)
        for d in summaries:
            yield summary_family(d, now)
        for d in self.own_summaries():
            yield summary_family(d, now)
        yield InfoMetricFamily(
            "trizab_server",
            "trizab's version, the ZooKeeper version it speaks, and this server's state (mntr's text keys)",
            value={"version": snapshot.version, "server_state": snapshot.mode},
        )
        yield InfoMetricFamily(
            "trizab_storage_engine", "The storage engine (storage=NAME)", value={"engine": self.engine_name}
        )
        yield GaugeMetricFamily(
            "trizab_barrier_in_thread",
            "1 while log barriers run in a thread because the disk was slow (else inline on the event loop)",
            value=0 if self.disk.barrier_inline() else 1,
        )
        yield from self._storage_statistics()

    def _storage_statistics(self) -> Iterable[Metric]:
        try:
            stats: dict[str, Any] = self.disk.storage.statistics()
        except Exception:  # an engine's statistics must never fail a scrape
            return
        for key, value in sorted(stats.items()):
            if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
                continue
            name = f"trizab_storage_{key}"
            doc = f"The storage engine's {key} statistic"
            if key in _STORAGE_COUNTERS:
                yield CounterMetricFamily(name, doc, value=value)
            else:
                yield GaugeMetricFamily(name, doc, value=value)


def metrics_registry(config: cfg.ServerConfig, collector: ServerCollector) -> CollectorRegistry:
    """A registry of its own per server (several may run in one process), with ``collector``
    and, with ``exportJvmInfo``, the Python process's collectors."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    if config.metrics_export_process_info:
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
    return registry


async def serve_metrics(
    config: cfg.ServerConfig,
    registry: CollectorRegistry,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``/metrics`` until cancelled; reports the bound port (a taken port: StartupError)."""

    async def handler(path: str, query: str) -> HttpResponse:
        if path != "/metrics":
            # ZooKeeper's Jetty context maps /metrics only.
            return HttpResponse(404, b"not found; metrics are at /metrics\n", PLAIN)
        return HttpResponse(200, generate_latest(registry), CONTENT_TYPE_LATEST)

    await serve_http(
        config.metrics_http_host,
        config.metrics_http_port,
        handler,
        name="Prometheus metrics",
        task_status=task_status,
    )
