"""A real two-node SLURM cluster on this machine, for tests: munged, one slurmctld and two slurmd
(`slurmd -N n1`, `slurmd -N n2`) on 127.0.0.1 with ports of their own, every file in one directory.

Debian's slurm-wlm and munge packages provide the daemons (.ci/run installs them). Every daemon
runs in the foreground as our child, so it is stopped by its pid, never by name. Run as a script
(`python tests/slurm_cluster.py`) it starts a cluster and prints the SLURM_CONF to use, until ^C.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

DAEMONS = ("munged", "mungekey", "slurmctld", "slurmd", "sinfo", "sbatch", "squeue", "scancel", "scontrol")
NODES = ("n1", "n2")


class ClusterUnavailable(Exception):
    """The SLURM packages are missing or the daemons would not come up (with why)."""


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _find(name: str) -> str | None:
    return shutil.which(name) or next((p for d in ("/usr/sbin", "/sbin") if os.access(p := f"{d}/{name}", os.X_OK)),
                                      None)


class SlurmCluster:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.procs: list[subprocess.Popen] = []
        self.conf = self.root / "slurm.conf"
        self.env = dict(os.environ, SLURM_CONF=str(self.conf))

    # --- set-up --------------------------------------------------------------------------------
    def start(self, timeout: float = 120.0) -> "SlurmCluster":
        missing = [name for name in DAEMONS if _find(name) is None]
        if missing:
            raise ClusterUnavailable(f"not installed: {', '.join(missing)} (apt-get install slurm-wlm munge)")
        try:
            self._write_files()
            self._spawn([_find("munged"), "--foreground", "--force", f"--socket={self.munge_socket}",
                         f"--key-file={self.root / 'munge' / 'munge.key'}", f"--pid-file={self.root / 'munge' / 'pid'}",
                         f"--seed-file={self.root / 'munge' / 'seed'}", f"--log-file={self.root / 'log' / 'munged.log'}"],
                        "munged")
            self._wait(lambda: self.munge_socket.exists(), 30.0, "munged did not create its socket")
            self._spawn([_find("slurmctld"), "-D", "-i", "-f", str(self.conf)], "slurmctld")
            for node in NODES:
                self._spawn([_find("slurmd"), "-D", "-N", node, "-f", str(self.conf)], f"slurmd-{node}")
            self._wait(self.all_idle, timeout, "the nodes did not become idle")
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def munge_socket(self) -> Path:
        return self.root / "munge" / "socket"

    def _write_files(self) -> None:
        for sub in ("munge", "log", "spool/ctld", *(f"spool/{n}" for n in NODES)):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(self.root / "munge", 0o700)
        key = self.root / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o400)
        ctld_port, slurmd_port, *node_ports = _free_ports(2 + len(NODES))
        user = getpass.getuser()
        cpus = os.cpu_count() or 1
        lines = [
            f"ClusterName=td{os.getpid()}",
            "SlurmctldHost=localhost(127.0.0.1)",
            f"SlurmctldPort={ctld_port}",
            f"SlurmdPort={slurmd_port}",
            f"SlurmUser={user}",
            f"SlurmdUser={user}",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={self.munge_socket}",
            f"StateSaveLocation={self.root / 'spool' / 'ctld'}",
            f"SlurmdSpoolDir={self.root / 'spool'}/%n",
            f"SlurmctldPidFile={self.root / 'slurmctld.pid'}",
            f"SlurmdPidFile={self.root}/slurmd-%n.pid",
            f"SlurmctldLogFile={self.root / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={self.root / 'log'}/slurmd-%n.log",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core",
            "SchedulerType=sched/backfill",
            "ReturnToService=2",
            "MpiDefault=none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/none",
            "MessageTimeout=20",
            "SlurmctldTimeout=60",
            "SlurmdTimeout=120",
            "InactiveLimit=0",
            "KillWait=30",
            "MinJobAge=600",
            "EnforcePartLimits=ALL",  # a job the partition can never run is rejected at submission
        ]
        for node, port in zip(NODES, node_ports):
            lines.append(f"NodeName={node} NodeHostname=localhost NodeAddr=127.0.0.1 Port={port} "
                         f"CPUs={cpus} RealMemory=1000 State=UNKNOWN")
        lines.append(f"PartitionName=debug Nodes={','.join(NODES)} Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES")
        self.conf.write_text("\n".join(lines) + "\n")

    def _spawn(self, argv: list[str], name: str) -> None:
        log = open(self.root / "log" / f"{name}.stdout", "ab")
        try:
            self.procs.append(subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                               env=self.env, start_new_session=True))
        finally:
            log.close()

    def _wait(self, condition, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dead = [p for p in self.procs if p.poll() is not None]
            if dead:
                raise ClusterUnavailable(f"{' '.join(dead[0].args[:1])} exited with {dead[0].returncode}: "
                                         f"{self.logs_tail()}")
            if condition():
                return
            time.sleep(0.5)
        raise ClusterUnavailable(f"{what} within {timeout:g}s: {self.logs_tail()}")

    def logs_tail(self, lines: int = 8) -> str:
        out = []
        for path in sorted((self.root / "log").glob("*")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            if text:
                out.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(out)

    # --- queries -------------------------------------------------------------------------------
    def tool(self, *argv: str, check: bool = True, timeout: float = 60.0) -> subprocess.CompletedProcess:
        return subprocess.run(list(argv), capture_output=True, text=True, env=self.env, timeout=timeout, check=check)

    def node_states(self) -> dict[str, str]:
        try:
            done = self.tool("sinfo", "--noheader", "--Node", "--format=%N %T", check=False, timeout=20)
        except subprocess.TimeoutExpired:
            return {}
        states = {}
        for line in done.stdout.splitlines():
            parts = line.split()
            if len(parts) == 2:
                states[parts[0]] = parts[1]
        return states

    def all_idle(self) -> bool:
        states = self.node_states()
        return all(states.get(node, "").rstrip("*") == "idle" for node in NODES)

    def queue(self) -> list[str]:
        """Job ids squeue lists as pending or running (ended ones left out)."""
        done = self.tool("squeue", "--noheader", "--format=%i %T", check=False, timeout=20)
        return [line.split()[0] for line in done.stdout.splitlines()
                if line.split()[1:] and line.split()[1] in ("PENDING", "RUNNING", "COMPLETING", "CONFIGURING")]

    # --- tear-down -----------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop every daemon we started, by pid: SIGTERM, then SIGKILL for any still there.
        Jobs still queued or running are cancelled first, so no job step outlives the cluster."""
        if self.procs and all(p.poll() is None for p in self.procs):
            try:
                jobs = self.queue()
                if jobs:
                    self.tool("scancel", "--full", *jobs, check=False, timeout=30)
                    deadline = time.monotonic() + 60
                    while self.queue() and time.monotonic() < deadline:
                        time.sleep(0.5)
            except (OSError, subprocess.SubprocessError):
                pass
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + 20
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        self.procs.clear()


if __name__ == "__main__":  # pragma: no cover - a manual helper
    import tempfile

    with tempfile.TemporaryDirectory(prefix="slurm-") as tmp:
        cluster = SlurmCluster(Path(tmp)).start()
        print(f"export SLURM_CONF={cluster.conf}   (^C stops the cluster)")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            cluster.stop()
