"""A local single-node Apache Kafka in KRaft mode, its jars resolved from Maven Central by Maven."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import shutil
import uuid
from importlib import resources
from pathlib import Path

from cohortflow.devstack.process import (
    Address,
    port_open,
    run,
    running_pid,
    spawn,
    terminate,
    wait_until,
)
from cohortflow.errors import StackError

HEAP = "1g"  # the brief's ceiling: a broker heap of at most 1 GiB


class Kafka:
    name = "kafka"

    def __init__(self, bootstrap: str, stack: Path):
        host, _, port = bootstrap.split(",")[0].rpartition(":")
        self.address = Address(host, int(port))
        self.bootstrap = bootstrap
        self.home = stack / "kafka"
        self.libs = self.home / "libs"
        self.data = self.home / "data"
        self.pidfile = self.home / "kafka.pid"
        self.log = self.home / "server.log"
        self.console = self.home / "console.log"

    @property
    def controller_port(self) -> int:
        return self.address.port + 1

    def answers(self) -> bool:
        return port_open(self.address)

    def install(self) -> None:
        """Resolve the broker's jars with Maven, once per version of the POM."""
        pom = resources.files("cohortflow.devstack").joinpath("kafka-pom.xml").read_bytes()
        stamp = self.libs / ".pom-sha256"
        digest = hashlib.sha256(pom).hexdigest()
        if stamp.exists() and stamp.read_text() == digest:
            return
        if not shutil.which("mvn"):
            raise StackError("Maven (mvn) is needed to fetch Kafka from Maven Central: apt-get install maven")
        if not shutil.which("java"):
            raise StackError("Java 17+ is needed to run Kafka: apt-get install openjdk-17-jre-headless")
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "pom.xml").write_bytes(pom)
        if self.libs.exists():
            shutil.rmtree(self.libs)
        run(["mvn", "-q", "-B", "-f", str(self.home / "pom.xml"), "dependency:copy-dependencies",
             "-DincludeScope=runtime", f"-DoutputDirectory={self.libs.resolve()}"],
            what="resolving Kafka from Maven Central", timeout=900)
        stamp.write_text(digest)

    def version(self) -> str | None:
        """The broker version: of our jars, else of a local ``kafka.Kafka`` process (a remote broker does not say)."""
        jars = list(self.libs.glob("kafka_2.13-*.jar"))
        if not jars and self.address.is_loopback:
            jars = _jars_of_local_brokers()
        for jar in sorted(jars):
            match = re.search(r"kafka_2\.13-([\d.]+)\.jar$", jar.name)
            if match:
                return f"Apache Kafka {match.group(1)} (KRaft)"
        return None

    def _properties(self) -> str:
        host, port, ctl = self.address.host, self.address.port, self.controller_port
        return "\n".join([
            "# written by dev/services on every start: single node, KRaft, replication factor 1",
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{ctl}",
            f"listeners=PLAINTEXT://{host}:{port},CONTROLLER://127.0.0.1:{ctl}",
            f"advertised.listeners=PLAINTEXT://{host}:{port}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name=PLAINTEXT",
            f"log.dirs={self.data.resolve()}",
            "num.partitions=12",
            "default.replication.factor=1",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=12",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "transaction.state.log.num.partitions=12",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            # Topics are created by `cohortflow topics ensure`; a typo must fail, not create a topic.
            "auto.create.topics.enable=false",
            "delete.topic.enable=true",
            # Replay rebuilds the views from the log: keep it (the rebuild refuses when the start is gone).
            "log.retention.hours=-1",
            "message.max.bytes=2097152",
            "",
        ])

    def start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        props = self.home / "server.properties"
        props.write_text(self._properties())
        cluster_file = self.home / "cluster.id"
        if not cluster_file.exists():
            # KRaft wants a base64url UUID without padding (22 characters).
            cluster_file.write_text(base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode())
        classpath = f"{self.libs.resolve()}/*"
        run(["java", "-cp", classpath, "kafka.tools.StorageTool", "format", "-t", cluster_file.read_text().strip(),
             "-c", str(props), "--ignore-formatted"], what="formatting Kafka storage")
        log4j = resources.files("cohortflow.devstack").joinpath("kafka-log4j2.yaml")
        (self.home / "log4j2.yaml").write_bytes(log4j.read_bytes())
        spawn(["java", "-Xms256m", f"-Xmx{HEAP}", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
               "-Djava.awt.headless=true", f"-Dkafka.logs.dir={self.home.resolve()}",
               f"-Dlog4j2.configurationFile={(self.home / 'log4j2.yaml').resolve()}",
               "-cp", classpath, "kafka.Kafka", str(props.resolve())],
              self.console, self.pidfile)

    def wait_ready(self, timeout: float = 90) -> None:
        wait_until(self._metadata_ok, timeout, f"Kafka at {self.address}", self.log)

    def _metadata_ok(self) -> bool:
        """A real Metadata round trip that lists at least one broker."""
        from aiokafka import AIOKafkaClient  # imported here: only readiness needs it

        async def probe() -> bool:
            client = AIOKafkaClient(bootstrap_servers=self.bootstrap, request_timeout_ms=3000)
            try:
                await client.bootstrap()
                metadata = await client.fetch_all_metadata()
                return bool(metadata.brokers())
            except Exception:  # noqa: BLE001 - a readiness probe: any failure means "not ready yet"
                return False
            finally:
                await client.close()

        if not self.answers():
            return False
        return asyncio.run(probe())

    def is_ours(self) -> bool:
        return running_pid(self.pidfile) is not None

    def stop(self) -> bool:
        return terminate(self.pidfile, "kafka", timeout=60)


def _jars_of_local_brokers() -> list[Path]:
    """Kafka jars on the classpath of ``kafka.Kafka`` processes on this machine (another checkout's stack)."""
    jars: list[Path] = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if b"kafka.Kafka" not in argv or b"-cp" not in argv:
            continue
        classpath = argv[argv.index(b"-cp") + 1].decode(errors="replace")
        for entry in classpath.split(":"):
            jars += Path(entry).parent.glob("kafka_2.13-*.jar") if entry.endswith("*") else [Path(entry)]
    return jars
