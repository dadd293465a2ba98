"""Which JDK runs a managed server: one rule for OpenSearch, Elasticsearch and Kafka.

Candidates, in order: `$PINTEXT_<SERVER>_JAVA_HOME` (e.g. PINTEXT_OPENSEARCH_JAVA_HOME), `$PINTEXT_JAVA_HOME`,
`$JAVA_HOME`, the JDK folders known on these machines (Debian's JDK 17, Temurin 25), then `java` on PATH. The first
whose major version is in the server's supported range wins; a candidate out of range is skipped, except the
server's own override, which is an error when it does not fit (it was asked for by name). Only the standard
library is used, so `status` commands stay light.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from pintext.servers.lifecycle import ServerError

DEBIAN_JDK17 = Path("/usr/lib/jvm/java-17-openjdk-amd64")
TEMURIN_JDK25 = Path("/usr/lib/jvm/temurin-25-jdk-amd64")
KNOWN_JDKS = (DEBIAN_JDK17, TEMURIN_JDK25)
SHARED_OVERRIDES = ("PINTEXT_JAVA_HOME", "JAVA_HOME")


class JavaNotFoundError(ServerError):
    """No candidate JDK fits the server's supported Java range; the message lists what was seen."""


@dataclass(frozen=True)
class JavaRange:
    """The Java major versions a server runs on, both ends inclusive (`maximum=None`: no upper bound)."""

    minimum: int
    maximum: int | None = None

    def accepts(self, major: int) -> bool:
        return major >= self.minimum and (self.maximum is None or major <= self.maximum)

    def __str__(self) -> str:
        return f"{self.minimum}+" if self.maximum is None else f"{self.minimum}..{self.maximum}"


@dataclass(frozen=True)
class Java:
    """A chosen JDK: its home folder (for JAVA_HOME-style variables), major version, and which rule found it."""

    home: Path
    major: int
    source: str

    @property
    def executable(self) -> Path:
        return self.home / "bin" / "java"


def override_variable(server: str) -> str:
    """`PINTEXT_<SERVER>_JAVA_HOME` for a server key like "opensearch"."""
    return f"PINTEXT_{server.upper()}_JAVA_HOME"


def candidate_homes(server: str, env: dict[str, str]) -> list[tuple[str, Path]]:
    """(where it came from, JDK home) in the order the rule tries them."""
    candidates = [(name, Path(env[name])) for name in (override_variable(server), *SHARED_OVERRIDES) if env.get(name)]
    candidates += [("known JDK", home) for home in KNOWN_JDKS]
    on_path = shutil.which("java", path=env.get("PATH"))
    if on_path:
        candidates.append(("PATH", Path(on_path).resolve().parent.parent))
    return candidates


def choose_java(server: str, label: str, supported: JavaRange, env: dict[str, str] | None = None) -> Java:
    """The JDK `server` (key like "opensearch"; `label` like "OpenSearch 3.5.0" for messages) runs on."""
    env = dict(os.environ if env is None else env)
    explicit = override_variable(server)
    seen = []
    for source, home in candidate_homes(server, env):
        major = java_major_version(home / "bin" / "java")
        if source == explicit and not supported.accepts(major):
            found = f"Java {major}" if major else "no working java"
            raise JavaNotFoundError(f"{explicit}={home} is {found}; {label} needs Java {supported}")
        if supported.accepts(major):
            return Java(home, major, source)
        seen.append(f"{home} ({source}: {f'Java {major}' if major else 'no java'})")
    raise JavaNotFoundError(
        f"{label} needs Java {supported}; set {explicit} to such a JDK. Seen: {', '.join(seen) or 'none'}"
    )


@functools.lru_cache(maxsize=32)
def java_major_version(java: Path) -> int:
    """The major version `java -version` reports (8 for 1.8); 0 when there is no working java there."""
    if not java.is_file():
        return 0
    try:
        result = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return parse_java_version(result.stderr + result.stdout)


def parse_java_version(banner: str) -> int:
    """Major version from a `java -version` banner: `version "17.0.15"` -> 17, `"1.8.0_392"` -> 8."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', banner)
    if not match:
        return 0
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major
