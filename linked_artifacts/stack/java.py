"""Find a Java runtime good enough for each JVM part, or say exactly what to install."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from linked_artifacts.errors import StackError

_VERSION = re.compile(r'version "(\d+)(?:\.(\d+))?')


def java_major(java: str) -> int:
    try:
        out = subprocess.run(  # noqa: S603 - fixed argv
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except OSError as exc:
        raise StackError(
            f"cannot run {java}: {exc}. Fix: install Java 17+ (Debian: apt-get install openjdk-17-jre-headless)."
        ) from exc
    match = _VERSION.search(out.stderr + out.stdout)
    if not match:
        raise StackError(
            f"cannot tell the Java version of {java}. Fix: point LINKED_ARTIFACTS_REGISTRY_JAVA at a JDK 17+."
        )
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def find_java(*, minimum: int, explicit: Path | None = None, purpose: str) -> str:
    """`explicit` if given, else $JAVA_HOME or `java` on PATH; a JDK under /usr/lib/jvm only when those are
    too old (Apicurio 3.1+ wants 21 while Kafka is happy with 17)."""
    if explicit is not None:
        if java_major(str(explicit)) < minimum:
            raise StackError(f"{explicit} is older than Java {minimum}, which {purpose} needs.")
        return str(explicit)
    candidates: list[str] = []
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        candidates.append(str(Path(java_home) / "bin" / "java"))
    on_path = shutil.which("java")
    if on_path:
        candidates.append(on_path)
    if not candidates:
        raise StackError(
            f"Java is not installed; {purpose} needs Java {minimum}+. "
            "Fix: apt-get install openjdk-17-jre-headless (or set LINKED_ARTIFACTS_KAFKA_BOOTSTRAP_SERVERS "
            "and LINKED_ARTIFACTS_REGISTRY_URL to use external services)."
        )
    for java in [*candidates, *(str(p) for p in sorted(Path("/usr/lib/jvm").glob("*/bin/java")))]:
        if java_major(java) >= minimum:
            return java
    raise StackError(
        f"no Java {minimum}+ found for {purpose} (tried {', '.join(candidates)} and /usr/lib/jvm). "
        f"Fix: install JDK {minimum}+ or set LINKED_ARTIFACTS_REGISTRY_JAVA."
    )
