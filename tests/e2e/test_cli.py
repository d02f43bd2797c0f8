"""`trizab serve` / `python -m trizab` as a user runs them: errors are one line and exit 2."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from testkit.process import TrizabProcess, four_letter_word, free_port
from testkit.procs import terminate_process
from trizab.runtime.datadir import LOCK_NAME, holder_pid
from trizab.runtime.launcher import write_configs

pytestmark = pytest.mark.slow


def run_cli(*args: str, cwd: Path, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trizab", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.parametrize(
    ("config", "fragments"),
    [
        ("tickTime=2000\nclientPort=notaport\n", ["zoo.cfg:2", "clientPort=notaport", "integer"]),
        ("storage=nosuchengine\n", ["storage=nosuchengine", "choices", "memory"]),
        ("storage=memory\nstorage.bogus=1\n", ["storage.bogus=1", "unknown option"]),
        ("forceSync=perhaps\n", ["forceSync=perhaps", "yes/no"]),
        ("tickTime=\n", ["zoo.cfg:1", "tickTime="]),
    ],
)
def test_bad_config_is_one_line_exit_2(tmp_path: Path, config: str, fragments: list[str]) -> None:
    cfg = tmp_path / "zoo.cfg"
    cfg.write_text(f"dataDir={tmp_path / 'data'}\nclientPort={free_port()}\n" + config)
    # The first two lines shift the interesting one down; adjust the expected line numbers.
    fragments = [f.replace("zoo.cfg:1", "zoo.cfg:3").replace("zoo.cfg:2", "zoo.cfg:4") for f in fragments]
    assert_one_line_error(run_cli("serve", "--config", str(cfg), cwd=tmp_path), *fragments)


def test_security_setting_trizab_lacks_stops_start_up(tmp_path: Path) -> None:
    cfg = tmp_path / "zoo.cfg"
    line = "kerberos.canonicalizeHostNames=true"
    cfg.write_text(f"dataDir={tmp_path / 'data'}\nclientPort={free_port()}\n{line}\n")
    result = run_cli("serve", "--config", str(cfg), cwd=tmp_path)
    assert_one_line_error(result, "zoo.cfg:3", line.split("=")[0], "trizab does not implement")


def test_a_tls_port_without_a_key_store_stops_start_up(tmp_path: Path) -> None:
    # A zoo.cfg asking only for a TLS port must not fall back to plain text on the default port.
    cfg = tmp_path / "zoo.cfg"
    cfg.write_text(f"dataDir={tmp_path / 'data'}\nsecureClientPort={free_port()}\n")
    result = run_cli("serve", "--config", str(cfg), cwd=tmp_path)
    assert_one_line_error(result, "secureClientPort needs ssl.keyStore.location")


def test_a_key_store_that_does_not_load_stops_start_up(tmp_path: Path) -> None:
    cfg = tmp_path / "zoo.cfg"
    (tmp_path / "ks.p12").write_bytes(b"not a PKCS12 file")
    cfg.write_text(
        f"dataDir={tmp_path / 'data'}\nsecureClientPort={free_port()}\n"
        f"ssl.keyStore.location={tmp_path / 'ks.p12'}\nssl.keyStore.password=hunter2\n"
    )
    result = run_cli("serve", "--config", str(cfg), cwd=tmp_path)
    assert_one_line_error(result, "client TLS: cannot load ssl.keyStore.location", "as PKCS12")
    assert "hunter2" not in result.stderr


def test_missing_config_file(tmp_path: Path) -> None:
    assert_one_line_error(run_cli("serve", "--config", "nope.cfg", cwd=tmp_path), "nope.cfg")


def test_bad_flag(tmp_path: Path) -> None:
    assert_one_line_error(run_cli("serve", "--port", "99999", cwd=tmp_path), "99999")
    assert_one_line_error(run_cli("serve", "--frobnicate", cwd=tmp_path), "--frobnicate")


def test_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("serve", "--port", str(port), "--data-dir", str(tmp_path / "d"), cwd=tmp_path)
    assert_one_line_error(result, f"127.0.0.1:{port}")


def test_plugins_lists_builtin_storage(tmp_path: Path) -> None:
    result = run_cli("plugins", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "memory" in result.stdout and "txnlog" in result.stdout


def test_default_serve_uses_trizab_data_and_answers_four_letter_words(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "trizab", "serve", "--port", str(port)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = four_letter_word("127.0.0.1", port, "ruok", timeout=1)
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline
                time.sleep(0.05)
        assert answer == "imok"  # the embedded default whitelists every word
        assert "zookeeper.version=3.8." in four_letter_word("127.0.0.1", port, "envi")
        assert (tmp_path / "trizab-data").is_dir()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "Traceback" not in err


@pytest.mark.parametrize("storage", ["txnlog", "sqlite"])
def test_data_survives_restart(tmp_path: Path, storage: str) -> None:
    with TrizabProcess(tmp_path, storage=storage) as server:
        zk = KazooClient(hosts=server.address)
        zk.start(timeout=10)
        zk.create("/kept", b"value")
        zk.create("/kept/child-", b"", sequence=True)
        zk.stop()
        zk.close()
        server.restart(kill=True)  # a crash: acknowledged writes must still be there
        zk = KazooClient(hosts=server.address)
        zk.start(timeout=10)
        try:
            assert zk.get("/kept")[0] == b"value"
            assert zk.get_children("/kept") == ["child-0000000000"]
        finally:
            zk.stop()
            zk.close()


def test_snapshots_then_crash_recover_everything(tmp_path: Path) -> None:
    with TrizabProcess(tmp_path, storage="txnlog", extra_config=["snapCount=4"]) as server:
        zk = KazooClient(hosts=server.address)
        zk.start(timeout=10)
        for i in range(30):
            zk.create(f"/n{i}", str(i).encode())
        zk.set("/n0", b"changed")
        zk.stop()
        zk.close()
        server.restart(kill=True)
        assert "snapshot at 0x" in server.log_path.read_text()
        zk = KazooClient(hosts=server.address)
        zk.start(timeout=10)
        try:
            assert sorted(zk.get_children("/")) == sorted([*(f"n{i}" for i in range(30)), "zookeeper"])
            assert zk.get("/n0")[0] == b"changed" and zk.get("/n29")[0] == b"29"
        finally:
            zk.stop()
            zk.close()


def _listing(directory: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``directory`` with its size and modification time: what a write changes."""
    return {
        str(p.relative_to(directory)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(directory.rglob("*"))
    }


def _kazoo_write(address: str, path: str) -> None:
    zk = KazooClient(hosts=address)
    zk.start(timeout=10)
    try:
        zk.create(path, b"value")
    finally:
        zk.stop()
        zk.close()


def test_tls_client_on_the_plain_port_is_named_and_the_server_keeps_serving(tmp_path: Path) -> None:
    with TrizabProcess(tmp_path / "server") as server:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        assert server.port is not None
        with (
            socket.create_connection((server.host, server.port), timeout=10) as raw,
            pytest.raises((ssl.SSLError, ConnectionError)),
        ):
            # The server closes the connection on the ClientHello instead of waiting for a frame.
            context.wrap_socket(raw, server_hostname="localhost")
        expected = f"TLS handshake on a plain-text port from {server.host}:"
        deadline = time.monotonic() + 10
        while expected not in server.log_tail(400):
            assert time.monotonic() < deadline, server.log_tail()
            time.sleep(0.05)
        assert "is the client configured for TLS? this server has no TLS port" in server.log_tail(400)
        assert "frame length" not in server.log_tail(400)
        _kazoo_write(server.address, "/after-tls")


def test_second_server_on_one_data_dir_stops_and_the_first_keeps_working(tmp_path: Path) -> None:
    with TrizabProcess(tmp_path / "first") as first:
        data = first.data_dir
        before = _listing(data)
        result = run_cli("serve", "--port", str(free_port()), "--data-dir", str(data), cwd=tmp_path)
        assert_one_line_error(result, f"dataDir {data} is in use", f"(pid {first.pid})")
        assert _listing(data) == before  # the second server wrote nothing
        _kazoo_write(first.address, "/first")  # and the first is unharmed
        first.kill()  # a crash: the kernel drops the lock with the process
        first.start()
        assert holder_pid(data) == first.pid
        zk = KazooClient(hosts=first.address)
        zk.start(timeout=10)
        try:
            assert zk.get("/first")[0] == b"value"
        finally:
            zk.stop()
            zk.close()


def test_ensemble_member_on_a_data_dir_taken_by_another_member_stops(tmp_path: Path) -> None:
    (_, config1, _), (_, config2, _), _ = write_configs(tmp_path, 3, tick_time=200)
    data1 = config1.parent / "data"
    # Member 2's zoo.cfg with member 1's dataDir: a copy-and-paste mistake.
    text = config2.read_text().replace(f"dataDir={config2.parent / 'data'}", f"dataDir={data1}")
    config2.write_text(text)
    member1 = subprocess.Popen(
        [sys.executable, "-m", "trizab", "serve", "--config", str(config1)],
        cwd=config1.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # Alone it cannot elect a leader, but it owns its dataDir from start-up on.
        deadline = time.monotonic() + 30
        while holder_pid(data1) != member1.pid:
            assert member1.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        # Then it writes its initial snapshot (a data directory without one gets one).
        while not (data1 / "version-2" / "snapshot.0").exists():
            assert member1.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        before = _listing(data1)
        result = run_cli("serve", "--config", str(config2), cwd=config2.parent)
        assert_one_line_error(result, f"dataDir {data1} is in use", f"(pid {member1.pid})")
        assert _listing(data1) == before
        assert member1.poll() is None
    finally:
        assert terminate_process(member1, 10) == 0


def _unwritable(directory: Path, command: list[str]) -> list[str]:
    """``command`` run where ``directory`` cannot be written.

    Root ignores permission bits, so as root (as in CI) the directory becomes a read-only bind
    mount in a mount namespace of the command's own (``unshare -m``): the machine's mounts are
    untouched and the mount goes with the command.  Anybody else gets its mode taken away.
    """
    if os.geteuid() != 0:
        directory.chmod(0o555)
        return command
    script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'
    return ["unshare", "-m", "sh", "-c", script, str(directory), *command]


@pytest.mark.parametrize("key", ["dataDir", "dataLogDir"])
def test_unwritable_data_directory_is_one_line_exit_2(tmp_path: Path, key: str) -> None:
    # A data directory as an earlier run left it (snapshot, log, lock file), then made read-only.
    with TrizabProcess(tmp_path, extra_config=[f"dataLogDir={tmp_path / 'log'}"]) as server:
        _kazoo_write(server.address, "/before")
    assert (tmp_path / "data" / LOCK_NAME).exists() and (tmp_path / "log" / LOCK_NAME).exists()
    directory = tmp_path / ("data" if key == "dataDir" else "log")
    serve = [sys.executable, "-m", "trizab", "serve", "--config", str(tmp_path / "zoo.cfg")]
    try:
        result = subprocess.run(
            _unwritable(directory, serve), cwd=tmp_path, capture_output=True, text=True, timeout=30
        )
    finally:
        directory.chmod(0o755)
    assert_one_line_error(result, f"cannot write to {key} {directory}: ")
    assert result.stderr.strip().endswith(("Read-only file system", "Permission denied")), result.stderr


@pytest.mark.parametrize(
    ("jaas", "fragments"),
    [
        (None, ["cannot read the JAAS file", "No such file"]),
        ("Server { org.apache.zookeeper.server.auth.DigestLoginModule required user_a=; };", ["no value"]),
        (
            'Server { com.sun.security.auth.module.Krb5LoginModule required keyTab="/k"; };',
            ["Krb5LoginModule needs useKeyTab=true"],
        ),
    ],
)
def test_a_missing_or_unusable_jaas_file_stops_start_up(
    tmp_path: Path, jaas: str | None, fragments: list[str]
) -> None:
    path = tmp_path / "jaas.conf"
    if jaas is not None:
        path.write_text(jaas)
    cfg = tmp_path / "zoo.cfg"
    cfg.write_text(
        f"dataDir={tmp_path / 'data'}\nclientPort={free_port()}\njava.security.auth.login.config={path}\n"
    )
    assert_one_line_error(run_cli("serve", "--config", str(cfg), cwd=tmp_path), str(path), *fragments)
