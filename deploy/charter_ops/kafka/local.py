"""A local single-node Apache Kafka (KRaft) for development and tests.

Kafka itself, not a mock: the broker's jars come from Maven Central through ``mvn
dependency:copy-dependencies`` (cached, never committed), the storage is formatted for
KRaft, and the broker runs with ``java`` on loopback. ``up`` is idempotent and ``down``
stops the process it started, gently first.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

KAFKA_VERSION = "4.1.1"
LOG4J_VERSION = "2.24.3"
_HERE = Path(__file__).resolve().parent
_READY_LINE = "Kafka Server started"
_PR_SET_PDEATHSIG = 1


class KafkaLocalError(RuntimeError):
    """Kafka could not be fetched, formatted or started; the message says what to do."""


def default_jars_dir() -> Path:
    """Where the broker's classpath is cached (shared by every local broker and test run)."""
    base = os.environ.get("CHARTER_KAFKA_JARS_DIR")
    if base:
        return Path(base)
    return Path.home() / ".cache" / "charter" / f"kafka-{KAFKA_VERSION}" / "lib"


def default_home() -> Path:
    """Where the development broker keeps its data, log and pid file."""
    base = os.environ.get("CHARTER_KAFKA_HOME")
    return Path(base) if base else Path.home() / ".local" / "share" / "charter" / "kafka"


def ensure_jars(jars_dir: Path | None = None, say: Callable[[str], None] = print) -> Path:
    """Fetch Kafka's broker classpath from Maven Central unless it is cached already."""
    jars_dir = jars_dir or default_jars_dir()
    marker = jars_dir / ".complete"
    if marker.exists() and marker.read_text().strip() == KAFKA_VERSION:
        return jars_dir
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaLocalError(
            "Maven (mvn) is needed to fetch Apache Kafka from Maven Central; install it (apt-get install maven)"
        )
    say(f"Fetching Apache Kafka {KAFKA_VERSION} from Maven Central into {jars_dir} (once; about 45 MB)...")
    work = jars_dir.parent / "build"
    work.mkdir(parents=True, exist_ok=True)
    pom = (_HERE / "pom.xml").read_text()
    (work / "pom.xml").write_text(
        pom.replace("@KAFKA_VERSION@", KAFKA_VERSION).replace("@LOG4J_VERSION@", LOG4J_VERSION)
    )
    if jars_dir.exists():
        shutil.rmtree(jars_dir)
    result = subprocess.run(  # noqa: S603 - fixed arguments
        [
            mvn,
            "-q",
            "-B",
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={jars_dir}",
        ],
        cwd=work,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise KafkaLocalError(
            f"mvn could not fetch Kafka {KAFKA_VERSION}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )
    marker.write_text(KAFKA_VERSION)
    say(f"Kafka {KAFKA_VERSION}: {len(list(jars_dir.glob('*.jar')))} jars ready.")
    return jars_dir


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


def free_port() -> int:
    """A TCP port nobody listens on right now (for test brokers)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass(frozen=True)
class KafkaStatus:
    """What ``charter kafka status`` reports."""

    running: bool
    pid: int | None
    bootstrap_servers: str
    home: Path
    log_file: Path


@dataclass(frozen=True)
class LocalKafka:
    """One local broker: its ports, its home (data, log, pid) and the shared jar cache."""

    home: Path
    port: int = 9092
    controller_port: int = 29093
    heap: str = "512m"
    jars_dir: Path | None = None
    #: SCRAM-SHA-512 principals (name, password) created when the storage is formatted. With
    #: any, the broker is secured: clients authenticate (SASL_PLAINTEXT), ACLs decide
    #: (StandardAuthorizer, nothing allowed without one) and ``admin`` is the super user.
    scram_users: tuple[tuple[str, str], ...] = ()

    @property
    def secured(self) -> bool:
        return bool(self.scram_users)

    @property
    def admin_password(self) -> str:
        password = dict(self.scram_users).get(SUPER_USER)
        if password is None:
            raise KafkaLocalError(f"a secured broker needs a {SUPER_USER!r} principal among its SCRAM users")
        return password

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.home / "kafka.log"

    @property
    def _pid_file(self) -> Path:
        return self.home / "kafka.pid"

    @property
    def _data_dir(self) -> Path:
        return self.home / "data"

    def _pid(self) -> int | None:
        try:
            pid = int(self._pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        return pid if b"kafka.Kafka" in cmdline and str(self.home).encode() in cmdline else None

    def status(self) -> KafkaStatus:
        pid = self._pid()
        return KafkaStatus(
            running=pid is not None and port_open("127.0.0.1", self.port),
            pid=pid,
            bootstrap_servers=self.bootstrap_servers,
            home=self.home,
            log_file=self.log_file,
        )

    def _configure(self, jars: Path) -> Path:
        self.home.mkdir(parents=True, exist_ok=True)
        properties = self.home / "server.properties"
        template = (_HERE / "server.properties").read_text()
        if self.secured:
            template = _secured(template, self.admin_password)
        properties.write_text(
            template.replace("@PORT@", str(self.port))
            .replace("@CONTROLLER_PORT@", str(self.controller_port))
            .replace("@DATA_DIR@", str(self._data_dir))
        )
        if not (self._data_dir / "meta.properties").exists():
            classpath = f"{jars}/*"
            cluster_id = (
                subprocess.run(  # noqa: S603
                    [_java(), "-cp", classpath, "kafka.tools.StorageTool", "random-uuid"],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                .stdout.strip()
                .splitlines()[-1]
            )
            formatted = subprocess.run(  # noqa: S603
                [
                    _java(),
                    "-cp",
                    classpath,
                    "kafka.tools.StorageTool",
                    "format",
                    "-t",
                    cluster_id,
                    "-c",
                    str(properties),
                    "--ignore-formatted",
                    *(
                        option
                        for name, password in self.scram_users
                        for option in ("--add-scram", f"SCRAM-SHA-512=[name={name},password={password}]")
                    ),
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if formatted.returncode != 0:
                raise KafkaLocalError(f"formatting KRaft storage failed:\n{formatted.stdout}{formatted.stderr}")
        return properties

    def up(
        self,
        timeout: float = 120.0,
        *,
        tie_to_parent: bool = False,
        say: Callable[[str], None] = print,
    ) -> KafkaStatus:
        """Start the broker unless it runs already; return once it accepts connections.

        ``tie_to_parent`` makes the broker die with the calling process (test sessions),
        so that no broker outlives the suite even if pytest is killed.
        """
        current = self.status()
        if current.running:
            return current
        if port_open("127.0.0.1", self.port) or port_open("127.0.0.1", self.controller_port):
            raise KafkaLocalError(
                f"port {self.port} or {self.controller_port} is taken by another process; "
                "stop it or choose other ports (CHARTER_KAFKA_PORT, CHARTER_KAFKA_CONTROLLER_PORT)"
            )
        _java()  # fail early, before fetching jars, if there is no Java
        jars = ensure_jars(self.jars_dir, say)
        properties = self._configure(jars)
        log = self.log_file.open("ab")
        start = self.log_file.stat().st_size
        process = subprocess.Popen(  # noqa: S603
            [
                _java(),
                f"-Xmx{self.heap}",
                f"-Xms{self.heap}",
                "-XX:+UseSerialGC",
                "-XX:TieredStopAtLevel=1",
                f"-Dlog4j2.configurationFile={_HERE / 'log4j2.yaml'}",
                f"-Dkafka.logs.dir={self.home}",
                "-cp",
                f"{jars}/*",
                "kafka.Kafka",
                str(properties),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent if tie_to_parent else None,  # noqa: PLW1509
        )
        log.close()
        self._pid_file.write_text(str(process.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise KafkaLocalError(
                    f"Kafka exited with code {process.returncode}; see {self.log_file}:\n{self._log_tail(start)}"
                )
            if _READY_LINE in self._log_tail(start, 1 << 20) and port_open("127.0.0.1", self.port):
                return self.status()
            time.sleep(0.25)
        self.down()
        raise KafkaLocalError(
            f"Kafka did not start within {timeout:.0f}s; see {self.log_file}:\n{self._log_tail(start)}"
        )

    def _log_tail(self, start: int, size: int = 4000) -> str:
        with self.log_file.open("rb") as handle:
            handle.seek(start)
            text = handle.read().decode(errors="replace")
        return text[-size:]

    def down(self, timeout: float = 30.0) -> bool:
        """Stop the broker (SIGTERM, then SIGKILL after ``timeout``); False if it was not running."""
        pid = self._pid()
        if pid is None:
            self._pid_file.unlink(missing_ok=True)
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and process_alive(pid):
            time.sleep(0.1)
        if process_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            while process_alive(pid):
                time.sleep(0.05)
        self._pid_file.unlink(missing_ok=True)
        return True

    def kill(self) -> None:
        """SIGKILL the broker, as a crash would (fault-injection tests)."""
        pid = self._pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            while process_alive(pid):
                time.sleep(0.05)


SUPER_USER = "admin"


def _secured(template: str, admin_password: str) -> str:
    """The broker's properties with SASL/SCRAM on the client listener and ACLs enforced.

    The controller listener stays PLAINTEXT on loopback: in this single-process KRaft node
    only the broker itself talks to it (as ANONYMOUS, hence a super user there).
    """
    replaced = (
        template.replace("PLAINTEXT://127.0.0.1:@PORT@", "SASL_PLAINTEXT://127.0.0.1:@PORT@")
        .replace("inter.broker.listener.name=PLAINTEXT", "inter.broker.listener.name=SASL_PLAINTEXT")
        .replace(
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "listener.security.protocol.map=SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT",
        )
    )
    jaas = (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{SUPER_USER}" password="{admin_password}";'
    )
    return replaced + "\n".join(
        [
            "",
            "# secured: SCRAM-SHA-512 principals, ACLs enforced (charter_ops.kafka.local)",
            "sasl.enabled.mechanisms=SCRAM-SHA-512",
            "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512",
            f"listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config={jaas}",
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            f"super.users=User:{SUPER_USER};User:ANONYMOUS",
            "allow.everyone.if.no.acl.found=false",
            "",
        ]
    )


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise KafkaLocalError("Java 17+ is needed to run Kafka; install a JDK (apt-get install default-jre-headless)")
    return java


def process_alive(pid: int) -> bool:
    """True while the process runs (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie child of ours is dead for our purposes: reap it
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"
