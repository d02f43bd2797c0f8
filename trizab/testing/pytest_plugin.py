"""trizab's pytest plugin: trizab servers and ensembles as fixtures, and kazoo's harness on trizab.

Installed with the package (the ``pytest11`` entry point ``trizab``), it costs nothing until
a test asks for one of its fixtures: importing it starts no server and imports neither
kazoo nor trio.  It adds one ini option, ``trizab_kazoo_harness``, and no command-line
option.

Fixtures (servers listen on 127.0.0.1, with the memory engine):

``trizab_server`` / ``trizab_server_session``
    A standalone server (:class:`~trizab.testing.process.TrizabProcess`): ``.hosts`` is the
    connect string.  The function-scoped one is one process for the whole run, made fresh
    for each test: revived if a test killed or paused it, then every znode outside
    ``/zookeeper`` is deleted (as kazoo's own harness does; a restart is the fallback).
``trizab_ensemble`` / ``trizab_ensemble_session``
    Three members (:class:`~trizab.testing.ensemble.Ensemble`), with ``.hosts``, ``.leader()``,
    ``.kill(sid)``, ``.stop(sid)``, ``.start_member(sid)``, ``.restart(sid)``, ``.pause(sid)``,
    ``.resume(sid)``, ``.partition(sid, clients=False)`` and ``.heal()`` (``.proxied_hosts`` for
    clients a partition may cut).  The function-scoped one is reset
    before each test: partitions healed, members resumed and started, the tree emptied.
``kazoo_client``
    A started ``KazooClient`` connected to the ensemble if the test uses ``trizab_ensemble``
    (or its session form), else to ``trizab_server_session`` if used, else to
    ``trizab_server``; stopped and closed after the test.
``kazoo_client_factory``
    ``factory(hosts=None, **kwargs)`` making more started clients (the same default
    target), all stopped after the test.

Session-scoped servers keep their state across tests: tests sharing one use distinct paths.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from kazoo.client import KazooClient

    from trizab.testing.ensemble import Ensemble
    from trizab.testing.process import TrizabProcess

HARNESS_INI = "trizab_kazoo_harness"
HARNESS_ENV = "TRIZAB_KAZOO_HARNESS"
CLIENT_TIMEOUT_S = 10.0
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        HARNESS_INI,
        type="bool",
        default=False,
        help="run kazoo's KazooTestHarness/KazooTestCase against trizab instead of Apache ZooKeeper "
        f"(the environment variable {HARNESS_ENV}=1/0 overrides it)",
    )


def kazoo_harness_wanted(config: pytest.Config) -> bool:
    """The environment variable when set (so CI can run both), else the ini option."""
    value = os.environ.get(HARNESS_ENV)
    if value is not None:
        if value.strip().lower() in _TRUE:
            return True
        if value.strip().lower() in _FALSE:
            return False
        raise pytest.UsageError(f"{HARNESS_ENV}={value!r}: expected 1 or 0 (true or false)")
    return bool(config.getini(HARNESS_INI))


def pytest_configure(config: pytest.Config) -> None:
    if kazoo_harness_wanted(config):
        from trizab.testing import kazoo_harness

        kazoo_harness.install()
        config.add_cleanup(kazoo_harness.uninstall)


# -- standalone server --------------------------------------------------------------------------


def _standalone(workdir: Path) -> TrizabProcess:
    from trizab.testing.process import TrizabProcess
    from trizab.testing.tree import SUPER_DIGEST

    return TrizabProcess(
        workdir, storage="memory", extra_config=[f"DigestAuthenticationProvider.superDigest={SUPER_DIGEST}"]
    )


def _make_fresh(server: TrizabProcess) -> None:
    """Revive a server a test killed or paused, then empty its tree (restart if that fails)."""
    from trizab.testing.tree import wipe_tree

    server.resume()
    if not server.running:
        server.start()
        return  # the memory engine starts empty
    try:
        wipe_tree(server.hosts)
    except Exception:
        server.kill()
        server.start()


@pytest.fixture(scope="session")
def trizab_server_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrizabProcess]:
    """One standalone server for the whole run; its state is shared by the tests using it."""
    with _standalone(tmp_path_factory.mktemp("trizab-server-session")) as server:
        yield server


@pytest.fixture(scope="session")
def _trizab_server_reused(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrizabProcess]:
    with _standalone(tmp_path_factory.mktemp("trizab-server")) as server:
        yield server


@pytest.fixture
def trizab_server(_trizab_server_reused: TrizabProcess) -> TrizabProcess:
    """A standalone server with an empty tree (one process reused, reset before each test)."""
    _make_fresh(_trizab_server_reused)
    return _trizab_server_reused


# -- ensemble -----------------------------------------------------------------------------------


def _ensemble(workdir: Path) -> Ensemble:
    from trizab.testing.ensemble import Ensemble

    return Ensemble(workdir, 3, storage="memory").start()


class _EnsembleSlot:
    """The reused ensemble; replaced by a new one when a reset fails."""

    def __init__(self, factory: Callable[[], Ensemble]) -> None:
        self.factory = factory
        self.ensemble: Ensemble | None = None

    def fresh(self) -> Ensemble:
        if self.ensemble is not None:
            try:
                self.ensemble.reset()
                return self.ensemble
            except Exception:
                self.ensemble.close()
        self.ensemble = self.factory()
        return self.ensemble

    def close(self) -> None:
        if self.ensemble is not None:
            self.ensemble.close()


@pytest.fixture(scope="session")
def trizab_ensemble_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ensemble]:
    """One 3-member ensemble for the whole run; faults a test injects are its to undo."""
    ensemble = _ensemble(tmp_path_factory.mktemp("trizab-ensemble-session"))
    try:
        yield ensemble
    finally:
        ensemble.close()


@pytest.fixture(scope="session")
def _trizab_ensemble_reused(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_EnsembleSlot]:
    slot = _EnsembleSlot(lambda: _ensemble(tmp_path_factory.mktemp("trizab-ensemble")))
    try:
        yield slot
    finally:
        slot.close()


@pytest.fixture
def trizab_ensemble(_trizab_ensemble_reused: _EnsembleSlot) -> Ensemble:
    """A 3-member ensemble, healed, all members serving and the tree empty at the start of the test."""
    return _trizab_ensemble_reused.fresh()


# -- kazoo clients ------------------------------------------------------------------------------

_TARGETS = ("trizab_ensemble", "trizab_ensemble_session", "trizab_server_session", "trizab_server")


def _default_hosts(request: pytest.FixtureRequest) -> str:
    target = next((name for name in _TARGETS if name in request.fixturenames), "trizab_server")
    return str(request.getfixturevalue(target).hosts)


@pytest.fixture
def kazoo_client_factory(request: pytest.FixtureRequest) -> Iterator[Callable[..., KazooClient]]:
    """``factory(hosts=None, **kwargs)``: a started KazooClient, stopped after the test."""
    try:
        from kazoo.client import KazooClient
    except ImportError:
        raise pytest.UsageError("trizab's kazoo fixtures need kazoo: pip install kazoo") from None
    clients: list[KazooClient] = []

    def factory(hosts: str | None = None, **kwargs: Any) -> KazooClient:
        kwargs.setdefault("timeout", CLIENT_TIMEOUT_S)
        client = KazooClient(hosts or _default_hosts(request), **kwargs)
        clients.append(client)
        client.start(timeout=CLIENT_TIMEOUT_S)
        return client

    yield factory
    for client in clients:
        with contextlib.suppress(Exception):
            client.stop()
        client.close()


@pytest.fixture
def kazoo_client(kazoo_client_factory: Callable[..., KazooClient]) -> KazooClient:
    """A started KazooClient on the trizab fixture the test uses (see the module docstring)."""
    return kazoo_client_factory()
