"""Drive the stock Java client (ZooKeeperMain, the engine of zkCli.sh) through a script.

Theory of operation
-------------------
``org.apache.zookeeper.ZooKeeperMain`` from the Debian package's zookeeper.jar
reads commands from stdin when JLine is absent, so one scripted session is one
``java`` process with the script on stdin; stdout and stderr go to one pipe so
the command results and the error messages keep their order.  The transcript
is normalized for what legitimately differs between two servers: the
``Connecting to host:port`` line, dates (``ctime``/``mtime``), zxids (mapped
to their rank among all zxids of the transcript, which keeps "same" and
"later"), session ids (``ephemeralOwner``), log4j's warnings, and where the client's event thread
printed connection-state events among the commands' output (the events themselves are kept).  Watches are
left out of the script: the client prints their events from its event thread,
so where they land between other lines depends on thread scheduling, not on the
server (the differential tester covers watch events frame by frame).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence

from compat.differential.ops import digest_id
from testkit.apache_zk import classpath, java_executable

MAIN_CLASS = "org.apache.zookeeper.ZooKeeperMain"

ALICE = digest_id("alice", "secret")

SCRIPT = f"""\
version
create /jc
create /jc/a data1
create -e /jc/eph e
create -s /jc/seq- s
create -s -e /jc/eseq- x
create -c /jc/cont
create -t 60000 /jc/ttl t
create /jc/a dup
create /nope/x y
create /jc/cont/child c
get /jc/a
get -s /jc/a
get /jc/missing
set /jc/a data2
set -v 5 /jc/a bad
set -s /jc/a data3
stat /jc/a
stat /jc/eph
stat /jc/cont
stat /jc/ttl
stat /jc/missing
ls /jc
ls -s /jc
ls /jc/missing
getAllChildrenNumber /jc
getAllChildrenNumber /
getEphemerals /jc
getEphemerals
whoami
addauth digest alice:secret
whoami
create /jc/d x digest:{ALICE}:cdrwa
getAcl /jc/d
setAcl /jc/a auth:alice:cdrwa
getAcl /jc/a
getAcl -s /jc/a
setAcl /jc/a world:anyone:r
set /jc/a forbidden
get /jc/a
setAcl /jc/a ip:127.0.0.1:cdrwa
getAcl /jc/a
setAcl /jc/a bogus:x:cdrwa
setAcl -v 9 /jc/a world:anyone:cdrwa
delete /jc/a/nothing
delete -v 7 /jc/eph
delete /jc
delete /jc/cont/child
sync /jc
setquota -n 10 /jc
listquota /jc
delquota /jc
listquota /jc
deleteall /jc
ls /
get /jc
close
"""


def run_script(
    address: tuple[str, int],
    script: str = SCRIPT,
    timeout: float = 120.0,
    java_properties: Sequence[str] = (),
) -> str:
    """The raw combined stdout+stderr of ZooKeeperMain running ``script`` against ``address``.

    ``java_properties`` (``-Dkey=value``) configure the client: TLS, SASL, the socket class
    (:mod:`compat.javaclient.variants`).
    """
    java = java_executable()
    if java is None:
        raise RuntimeError("no java executable (set JAVA_HOME or install a JRE)")
    proc = subprocess.run(
        [java, "-cp", classpath(), *java_properties, MAIN_CLASS, "-server", f"{address[0]}:{address[1]}"],
        input=script + "quit\n",
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )
    return proc.stdout


_HEX = re.compile(r"0x[0-9a-fA-F]+")
_DATE = re.compile(r"^(ctime|mtime) = .*$")


def _events_last(lines: list[str]) -> list[str]:
    """The watcher's blocks (``println("\\nWATCHER::\\n" + event)``: a blank line, ``WATCHER::``,
    a blank line, the event) moved after everything else, in their order.

    The client prints them from its event thread, so where a connection-state event
    (SyncConnected, SaslAuthenticated, Closed) lands among the commands' output depends on thread
    scheduling (over Netty the connection completes asynchronously), not on the server; which
    events come, and in which order, does not, and is still compared.
    """
    kept: list[str] = []
    events: list[str] = []
    i = 0
    while i < len(lines):
        block = lines[i : i + 4]
        if len(block) == 4 and block[:3] == ["", "WATCHER::", ""] and block[3].startswith("WatchedEvent "):
            events.append(block[3])
            i += 4
        else:
            kept.append(lines[i])
            i += 1
    return [*kept, *(["WATCHER events:", *events] if events else [])]


def normalize(text: str) -> list[str]:
    lines = _events_last([line for line in text.splitlines() if not line.startswith("log4j:")])
    zxids: set[int] = set()
    for line in lines:
        m = re.match(r"^[cmp]Zxid = (0x[0-9a-fA-F]+)$", line)
        if m:
            zxids.add(int(m.group(1), 16))
    rank = {z: i for i, z in enumerate(sorted(zxids))}
    out: list[str] = []
    for line in lines:
        if line.startswith("Connecting to "):
            line = "Connecting to <server>"
        elif _DATE.match(line):
            line = line.split(" = ")[0] + " = <date>"
        elif re.match(r"^[cmp]Zxid = ", line):
            key, value = line.split(" = ")
            line = f"{key} = z{rank[int(value, 16)]}"
        elif line.startswith("ephemeralOwner = "):
            value = int(line.split(" = ")[1], 16)
            line = "ephemeralOwner = " + ("0x0" if value == 0 else "<session>")
        elif line.startswith("[/") and line.endswith("]"):
            # getEphemerals prints the server's list as is, and ZooKeeper's is in HashSet order
            # (ls sorts on the client side); compared sorted, like the differential tester does.
            line = "[" + ", ".join(sorted(line[1:-1].split(", "))) + "]"
        else:
            line = _HEX.sub("<hex>", line) if "session" in line.lower() else line
        out.append(line)
    return out


def compare(expected: list[str], actual: list[str]) -> str | None:
    """A unified diff of two normalized transcripts, or ``None`` if they are equal."""
    if expected == actual:
        return None
    import difflib

    return "\n".join(difflib.unified_diff(expected, actual, "zookeeper", "trizab", lineterm=""))
