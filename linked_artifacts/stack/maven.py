"""Resolve the JVM parts of the local stack from Maven Central, once, into the shared cache.

Kafka runs from its Maven artifacts on a classpath Maven resolves; Apicurio Registry from its ``all``
tar.gz. Maven keeps partial downloads (``.part`` files) and resumes them, so an interrupted first run
continues where it stopped. A marker file records a finished resolution, so later starts skip Maven.
"""

from __future__ import annotations

import shutil
import subprocess
import tarfile
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from linked_artifacts.errors import StackError

Progress = Callable[[str], None]

# log4j2 and slf4j versions pinned with Kafka: Kafka declares only slf4j-api, and Maven's "nearest wins"
# would otherwise pick slf4j 1.7, which silently drops every broker log line.
_KAFKA_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.linkedartifacts</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>2.0.17</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>{version}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j2-impl</artifactId><version>2.24.3</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>2.24.3</version></dependency>
  </dependencies>
</project>
"""


def require_tool(name: str, *, fix: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise StackError(f"`{name}` is not on PATH. Fix: {fix}")
    return path


def _mvn(args: list[str], *, repo: Path, cwd: Path, progress: Progress) -> None:
    mvn = require_tool(
        "mvn", fix="install Maven 3.8+ (Debian: apt-get install maven), or configure external services."
    )
    cmd = [
        mvn,
        "-B",
        f"-Dmaven.repo.local={repo}",
        # Show download progress in batch mode: a 150 MB first download should not look like a hang.
        "-Dorg.slf4j.simpleLogger.log.org.apache.maven.cli.transfer.Slf4jMavenTransferListener=info",
        "-Daether.connector.resumeDownloads=true",
        *args,
    ]
    proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
        cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    if proc.stdout is None:
        raise StackError("could not read Maven's output")
    tail: list[str] = []
    for line in proc.stdout:
        line = line.rstrip().removeprefix("[INFO] ")
        tail = (tail + [line])[-30:]
        if line.startswith(("Downloaded from", "Downloading from")) and (".jar" in line or ".tar.gz" in line):
            progress("  maven: " + line.split(":", 1)[1].strip()[:140])
    if proc.wait() != 0:
        detail = "\n".join(tail[-15:])
        raise StackError(
            "Maven could not resolve the local stack's artifacts. Fix: check access to Maven Central "
            f"(or a mirror in ~/.m2/settings.xml) and rerun; partial downloads resume.\n{detail}"
        )


def kafka_classpath(cache_dir: Path, version: str, progress: Progress) -> str:
    """The broker's classpath, resolving it with Maven the first time."""
    work = cache_dir / f"kafka-{version}"
    marker = work / "classpath.txt"
    if marker.is_file():
        return marker.read_text().strip()
    work.mkdir(parents=True, exist_ok=True)
    (work / "pom.xml").write_text(_KAFKA_POM.format(version=version))
    progress(f"resolving Apache Kafka {version} from Maven Central (first run only)")
    tmp = work / "classpath.tmp"
    _mvn(
        ["dependency:build-classpath", f"-Dmdep.outputFile={tmp}"],
        repo=cache_dir / "m2",
        cwd=work,
        progress=progress,
    )
    tmp.replace(marker)
    return marker.read_text().strip()


def registry_home(cache_dir: Path, version: str, progress: Progress) -> Path:
    """The unpacked Apicurio Registry distribution, downloading and unpacking it the first time."""
    home = cache_dir / f"apicurio-registry-{version}"
    if (home / ".complete").is_file():
        return home
    download = cache_dir / "downloads"
    download.mkdir(parents=True, exist_ok=True)
    artifact = f"io.apicurio:apicurio-registry-app:{version}:tar.gz:all"
    archive = download / f"apicurio-registry-app-{version}-all.tar.gz"
    if not archive.is_file():
        progress(f"downloading Apicurio Registry {version} (about 110-160 MB, first run only)")
        _mvn(
            ["dependency:copy", f"-Dartifact={artifact}", f"-DoutputDirectory={download}"],
            repo=cache_dir / "m2",
            cwd=download,
            progress=progress,
        )
    progress(f"unpacking {archive.name}")
    staging = home.with_name(home.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    with tarfile.open(archive) as tar:
        tar.extractall(staging, filter="data")
    shutil.rmtree(home, ignore_errors=True)
    staging.replace(home)
    (home / ".complete").write_text(version + "\n")
    return home


def registry_jar(home: Path) -> Path:
    """Quarkus fast-jar (3.1+) or legacy runner jar (3.0.x) layouts."""
    for candidate in [home / "quarkus-run.jar", *sorted(home.glob("*-runner.jar"))]:
        if candidate.is_file():
            return candidate
    raise StackError(
        f"no runnable jar in {home}. Fix: delete that directory and start again to unpack it anew."
    )


def resource_text(name: str) -> str:
    return resources.files("linked_artifacts.stack").joinpath(name).read_text()
