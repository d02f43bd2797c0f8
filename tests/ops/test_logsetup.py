"""--log-config, --log-file with rotation, --log-format json; bad input is one line and status 2."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from testkit.process import free_port
from testkit.procs import terminate_process
from trizab.logsetup import JsonFormatter, LogSetupError, configure_logging, load_log_config


@pytest.fixture(autouse=True)
def restore_root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
            h.close()
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_carry_time_level_logger_message_and_extra_fields() -> None:
    logger = logging.getLogger("trizab.server.core")
    record = logger.makeRecord(
        logger.name,
        logging.INFO,
        __file__,
        1,
        "session 0x%x established for %s",
        (0x1234, "127.0.0.1:5555"),
        None,
        extra={"session_id": "0x1234", "client": "127.0.0.1:5555"},
    )
    record.created = 0.25
    out = json.loads(JsonFormatter().format(record))
    assert out == {
        "time": "1970-01-01T00:00:00.250Z",
        "level": "INFO",
        "logger": "trizab.server.core",
        "message": "session 0x1234 established for 127.0.0.1:5555",
        "session_id": "0x1234",
        "client": "127.0.0.1:5555",
    }


def test_json_lines_carry_the_traceback() -> None:
    logger = logging.getLogger("x")
    try:
        raise ValueError("boom")
    except ValueError:
        record = logger.makeRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    out = json.loads(JsonFormatter().format(record))
    assert "ValueError: boom" in out["exception"] and "\n" not in JsonFormatter().format(record)


def test_the_log_file_rotates(tmp_path: Path) -> None:
    path = tmp_path / "trizab.log"
    configure_logging(log_file=path, max_bytes=2000, backups=3, log_format="json")
    for i in range(200):
        logging.getLogger("trizab.test").info("line %d of the rotation test", i)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["trizab.log", "trizab.log.1", "trizab.log.2", "trizab.log.3"]
    assert all(p.stat().st_size <= 2000 for p in tmp_path.iterdir())
    last = path.read_text().splitlines()[-1]
    assert json.loads(last)["message"] == "line 199 of the rotation test"


@pytest.mark.parametrize("suffix", [".json", ".toml"])
def test_a_dict_config_file_in_json_or_toml(tmp_path: Path, suffix: str) -> None:
    out = tmp_path / "out.log"
    config = {
        "version": 1,
        "formatters": {"plain": {"format": "%(levelname)s|%(name)s|%(message)s"}},
        "handlers": {"f": {"class": "logging.FileHandler", "filename": str(out), "formatter": "plain"}},
        "loggers": {"trizab": {"level": "DEBUG", "handlers": ["f"]}},
    }
    path = tmp_path / f"logging{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps(config))
    else:
        path.write_text(
            'version = 1\n[formatters.plain]\nformat = "%(levelname)s|%(name)s|%(message)s"\n'
            f'[handlers.f]\nclass = "logging.FileHandler"\nfilename = "{out}"\nformatter = "plain"\n'
            '[loggers.trizab]\nlevel = "DEBUG"\nhandlers = ["f"]\n'
        )
    assert load_log_config(path) == config
    configure_logging(config_file=path)
    logging.getLogger("trizab.quorum").debug("hello %s", "there")
    for h in logging.getLogger("trizab").handlers:
        h.flush()
    assert out.read_text() == "DEBUG|trizab.quorum|hello there\n"


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("missing.json", None, "No such file or directory"),
        ("bad.json", "{not json", "bad JSON"),
        ("bad.toml", "version = = 1", "bad TOML"),
        ("list.json", "[1, 2]", "expected a dictConfig object"),
        ("handler.json", '{"version": 1, "handlers": {"h": {"class": "no.such.Handler"}}}', "handler 'h'"),
        ("version.json", '{"version": 7}', "version"),
    ],
)
def test_bad_log_configs_are_one_readable_line(
    tmp_path: Path, name: str, content: str | None, expected: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(LogSetupError) as info:
        configure_logging(config_file=path)
    message = str(info.value)
    assert "\n" not in message and expected in message and str(path) in message


def test_serve_refuses_a_bad_log_config_with_status_2(tmp_path: Path) -> None:
    bad = tmp_path / "log.json"
    bad.write_text("{")
    for flags in (
        ["--log-config", str(bad)],
        ["--log-config", str(tmp_path / "nope.toml")],
        ["--log-file", str(tmp_path / "no" / "such" / "dir.log")],
        ["--log-max-bytes", "-1"],
    ):
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "trizab",
                "serve",
                "--port",
                "0",
                "--data-dir",
                str(tmp_path / "d"),
                *flags,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode == 2, (flags, run.stderr)
        assert len(run.stderr.strip().splitlines()) == 1 and run.stderr.startswith("trizab: "), run.stderr


def test_a_server_logging_json_lines_to_a_file(tmp_path: Path) -> None:
    port = free_port()
    log_file = tmp_path / "trizab.log"
    proc = subprocess.Popen(
        [
            *(
                sys.executable,
                "-m",
                "trizab",
                "serve",
                "--port",
                str(port),
                "--data-dir",
                str(tmp_path / "d"),
            ),
            *("--log-format", "json", "--log-file", str(log_file)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        client = KazooClient(hosts=f"127.0.0.1:{port}", timeout=5.0)
        client.start(timeout=30)
        sid = client.client_id[0]
        client.stop()
        client.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "closed by its client" not in log_file.read_text():
            time.sleep(0.05)
    finally:
        terminate_process(proc, 10)
    assert proc.stderr is not None and proc.stderr.read() == b""  # everything went to the file
    lines = [json.loads(line) for line in log_file.read_text().splitlines()]
    start = next(x for x in lines if "serving ZooKeeper clients" in x["message"])
    assert (
        start["level"] == "INFO"
        and start["logger"] == "trizab.server"
        and f"127.0.0.1:{port}" in start["message"]
    )
    opened = next(x for x in lines if "established" in x["message"])
    closed = next(x for x in lines if "closed by its client" in x["message"])
    for x in (opened, closed):
        assert x["session_id"] == f"0x{sid:x}" and x["client"] == "127.0.0.1"
