"""The cluster's network (devtools/cluster.py): one Linux network namespace per place (the
web hosts h1..hN and "db"), each with a veth pair into a bridge of the run's own, and a
private 10.x subnet; or, where namespaces cannot be made, loopback ports.

Names come from the run's port (its HAProxy port), so two runs on one machine (a test's
cluster beside `make cluster`) never share a name: namespaces `cluster-<port>-<place>`,
bridge `cb<port>`, veth `c<port><place>`, subnet 10.<200 + port/256 % 50>.<port % 256>.0/24
with the bridge on .1, db on .2 and host i on .10+i. Nothing is routed out of the subnet:
the namespaces have no default route, and HAProxy reaches the hosts from the root namespace
over the bridge, on 127.0.0.1 for its clients.

A run writes its runner's pid to /run/campaign-cluster/<port>.pid; `sweep_stale()` removes
the namespaces, bridge and processes of every run whose runner is gone (one that crashed or
was SIGKILLed), so a new run always starts clean.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

STATE = Path("/run/campaign-cluster")
_NS = re.compile(r"^cluster-(\d+)-(\w+)")


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


def why_no_namespaces() -> str:
    """Empty when this process can make network namespaces; else why not."""
    if os.geteuid() != 0:
        return "not root"
    if shutil.which("ip") is None:
        return "no `ip` command (iproute2)"
    probe = f"cluster-probe-{os.getpid()}"
    made = _ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return ""


@dataclass(frozen=True)
class Place:
    """Where a group of processes runs: a namespace and its address, or loopback."""

    name: str  # h1, h2, ..., db
    address: str  # what others reach it at
    netns: str | None  # None: loopback, the root namespace

    def wrap(self, argv: tuple[str, ...]) -> tuple[str, ...]:
        """The command line that runs `argv` in this place (`ip netns exec` execs in place,
        so the pid is the process's own)."""
        return argv if self.netns is None else ("ip", "netns", "exec", self.netns, *argv)


class Net:
    """The run's network: `up()`, `place(name)`, `cut(name)` / `mend(name)`, `down()`."""

    def __init__(self, port: int, *, namespaces: bool) -> None:
        self.port = port
        self.namespaces = namespaces
        self.bridge = f"cb{port}"
        self.prefix = f"10.{200 + port // 256 % 50}.{port % 256}"
        self.places: dict[str, Place] = {}

    def address(self, name: str) -> str:
        if not self.namespaces:
            return "127.0.0.1"
        if name == "db":
            return f"{self.prefix}.2"
        return f"{self.prefix}.{10 + int(name.removeprefix('h'))}"

    @property
    def root_address(self) -> str:
        """Where the places reach the root namespace (a test's receiver listens there)."""
        return f"{self.prefix}.1" if self.namespaces else "127.0.0.1"

    def veth(self, name: str) -> str:
        return f"c{self.port}{name}"

    def up(self, names: list[str]) -> None:
        """Make the bridge and one namespace per name (nothing in loopback mode)."""
        if self.namespaces:
            _ip("link", "add", self.bridge, "type", "bridge")
            _ip("addr", "add", f"{self.prefix}.1/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
        for name in names:
            self.add(name)

    def add(self, name: str) -> Place:
        netns = f"cluster-{self.port}-{name}" if self.namespaces else None
        place = Place(name=name, address=self.address(name), netns=netns)
        self.places[name] = place
        if netns is None:
            return place
        veth = self.veth(name)
        _ip("netns", "add", netns)
        _ip("link", "add", veth, "type", "veth", "peer", "name", f"{veth}p")
        _ip("link", "set", f"{veth}p", "netns", netns)
        inside = ("ip", "netns", "exec", netns, "ip")
        subprocess.run([*inside, "link", "set", f"{veth}p", "name", "eth0"], check=True)
        subprocess.run([*inside, "addr", "add", f"{place.address}/24", "dev", "eth0"], check=True)
        subprocess.run([*inside, "link", "set", "eth0", "up"], check=True)
        subprocess.run([*inside, "link", "set", "lo", "up"], check=True)
        _ip("link", "set", veth, "master", self.bridge)
        _ip("link", "set", veth, "up")
        return place

    def cut(self, name: str) -> None:
        """Cut the place's link: its packets go nowhere, as when a host drops off the net."""
        if self.namespaces:
            _ip("link", "set", self.veth(name), "down")

    def mend(self, name: str) -> None:
        if self.namespaces:
            _ip("link", "set", self.veth(name), "up")

    def down(self) -> None:
        """Kill anything left in the run's namespaces, remove them and the bridge."""
        remove(self.port)


def _namespaces() -> list[str]:
    if shutil.which("ip") is None:
        return []
    listed = _ip("netns", "list", check=False).stdout
    return [line.split()[0] for line in listed.splitlines() if line.strip()]


def remove(port: int) -> None:
    """Everything run `port` made: its processes in its namespaces, the namespaces, the
    bridge (its veths go with their namespaces), and the processes it remembered."""
    for netns in _namespaces() if shutil.which("ip") else []:
        found = _NS.match(netns)
        if not found or int(found.group(1)) != port:
            continue
        pids = _ip("netns", "pids", netns, check=False).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        _ip("netns", "del", netns, check=False)
    if shutil.which("ip"):
        # A namespace outlives `ip netns del` while a killed process in it is still dying,
        # and so does its veth: delete the run's veths (both ends go) and bridge by name.
        links = _ip("-o", "link", "show", check=False).stdout.splitlines()
        names = {line.split(":")[1].strip().split("@")[0] for line in links if ":" in line}
        for name in sorted(names):
            if re.fullmatch(rf"c{port}(h\d+|db)p?|cb{port}", name):
                _ip("link", "del", name, check=False)
    _kill_remembered(port)


def remember(port: int, pid: int) -> None:
    """Note a process the run started outside its namespaces (HAProxy; everything in
    loopback mode), with its name, so that a sweep can kill it but no later process that
    got its pid."""
    comm = Path(f"/proc/{pid}/comm")
    with contextlib.suppress(OSError), (STATE / f"{port}.pids").open("a") as pids:
        pids.write(f"{pid} {comm.read_text().strip()}\n")


def _kill_remembered(port: int) -> None:
    listed = STATE / f"{port}.pids"
    with contextlib.suppress(FileNotFoundError):
        for line in listed.read_text().splitlines():
            pid, _, name = line.partition(" ")
            with contextlib.suppress(OSError, ValueError):
                if Path(f"/proc/{pid}/comm").read_text().strip() == name:
                    os.killpg(int(pid), signal.SIGKILL)
        listed.unlink()


def claim(port: int) -> None:
    """Record this runner as the owner of `port`'s names (see the module)."""
    STATE.mkdir(parents=True, exist_ok=True)
    (STATE / f"{port}.pid").write_text(str(os.getpid()))


def release(port: int) -> None:
    for suffix in ("pid", "pids"):
        with contextlib.suppress(FileNotFoundError):
            (STATE / f"{port}.{suffix}").unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale() -> list[int]:
    """Remove what runs whose runner is dead left behind; the ports swept."""
    ports = {int(m.group(1)) for ns in _namespaces() if (m := _NS.match(ns))}
    if STATE.is_dir():
        ports |= {int(p.name.split(".")[0]) for p in STATE.glob("*.pid*")}
    swept = []
    for port in sorted(ports):
        pidfile = STATE / f"{port}.pid"
        try:
            owner = int(pidfile.read_text())
        except (FileNotFoundError, ValueError):
            owner = 0
        if owner and _alive(owner):
            continue
        remove(port)
        release(port)
        swept.append(port)
    return swept
