"""Verified downloads from Maven Central, shared by every managed server (OpenSearch, Elasticsearch, Kafka).

Every file is checked against the checksum Maven Central publishes beside it (`.sha512`, else `.sha1`) and lands
by an atomic rename, so a reader never sees half a file. A file Maven serves without any checksum is accepted only
against a digest the caller pins (and a pinned digest must also agree with a published one). Only the standard
library is used.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from pintext.servers.lifecycle import Progress, ServerError, no_progress

# Maven Central by default; PINTEXT_MAVEN_REPO points both managed servers at a mirror or an internal proxy.
MAVEN_REPO = os.environ.get("PINTEXT_MAVEN_REPO", "https://repo1.maven.org/maven2").rstrip("/")
# Strongest first: Maven Central has .sha1 for everything, .sha512 only for newer uploads.
CHECKSUM_ALGORITHMS = ("sha512", "sha1")
DOWNLOAD_CHUNK = 1 << 20
# (algorithm, hex digest)
Checksum = tuple[str, str]


class MavenDownloadError(ServerError):
    """A file could not be fetched from the repository, or did not match its published checksum."""


@dataclass(frozen=True)
class MavenArtifact:
    """One file in a Maven repository, named by its coordinates."""

    group: str
    artifact: str
    version: str
    packaging: str = "jar"

    @property
    def file_name(self) -> str:
        return f"{self.artifact}-{self.version}.{self.packaging}"

    def url(self, repo: str = MAVEN_REPO) -> str:
        return f"{repo}/{self.group.replace('.', '/')}/{self.artifact}/{self.version}/{self.file_name}"

    def with_packaging(self, packaging: str) -> "MavenArtifact":
        return MavenArtifact(self.group, self.artifact, self.version, packaging)


def _open(url: str, timeout: float):
    # Some mirrors refuse Python's default User-Agent.
    return urllib.request.urlopen(urllib.request.Request(url, headers={"User-Agent": "pintext"}), timeout=timeout)


def published_checksum(artifact: MavenArtifact, repo: str = MAVEN_REPO) -> Checksum | None:
    """(algorithm, hex digest) the repository publishes for the artifact: sha512 when present, else sha1;
    None when it publishes neither."""
    for algorithm in CHECKSUM_ALGORITHMS:
        try:
            with _open(f"{artifact.url(repo)}.{algorithm}", timeout=60) as response:
                text = response.read().decode("utf-8")
        except urllib.error.HTTPError as error:
            if error.code == 404:
                continue
            raise
        # Some checksum files carry "<digest>  <file name>"; the digest is the first word.
        return algorithm, text.split()[0].strip().lower()
    return None


def expected_checksum(artifact: MavenArtifact, repo: str, pinned: Checksum | None) -> Checksum:
    """The digest a download must match: the published one (which must agree with a pinned one), else the pin."""
    url = artifact.url(repo)
    try:
        published = published_checksum(artifact, repo)
    except OSError as error:  # URLError and HTTPError are OSErrors too
        raise MavenDownloadError(f"could not download the checksum of {url}: {error}") from error
    if published is None and pinned is None:
        raise MavenDownloadError(f"Maven Central publishes no .sha512 or .sha1 for {url}")
    if published and pinned and published[0] == pinned[0] and published[1] != pinned[1]:
        raise MavenDownloadError(f"the published {published[0]} of {url} is not the digest PinText pins")
    return published or pinned  # type: ignore[return-value]


def file_digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(DOWNLOAD_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _sidecar(target: Path, algorithm: str) -> Path:
    """`<file>.<algorithm>`: holds the digest a completed download matched."""
    return target.with_name(f"{target.name}.{algorithm}")


def is_downloaded(artifact: MavenArtifact, downloads_dir: Path) -> bool:
    """The file and its checksum sidecar are there (a cheap test; `download_artifact` also re-checks the digest)."""
    target = downloads_dir / artifact.file_name
    return target.is_file() and any(_sidecar(target, algorithm).is_file() for algorithm in CHECKSUM_ALGORITHMS)


def _verified_copy(target: Path) -> bool:
    for algorithm in CHECKSUM_ALGORITHMS:
        sidecar = _sidecar(target, algorithm)
        if target.is_file() and sidecar.is_file() and file_digest(target, algorithm) == sidecar.read_text().strip():
            return True
    return False


def download_artifact(
    artifact: MavenArtifact,
    downloads_dir: Path,
    repo: str = MAVEN_REPO,
    progress: Progress = no_progress,
    pinned: Checksum | None = None,
) -> Path:
    """The artifact's file under `downloads_dir`, downloaded and verified once, reused afterwards.

    A verified file gets a `<file>.<algorithm>` sidecar holding the digest it matched; a file without its
    sidecar (an interrupted earlier run) is downloaded again. The download goes to a temporary file in the
    same folder and is renamed into place only after its checksum matched, so no reader sees half a file
    (and parallel downloads of different files never share a temporary name).
    """
    target = downloads_dir / artifact.file_name
    if _verified_copy(target):
        return target
    downloads_dir.mkdir(parents=True, exist_ok=True)
    url = artifact.url(repo)
    algorithm, expected = expected_checksum(artifact, repo, pinned)
    progress(f"downloading {url}")
    handle, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=downloads_dir)
    temp_path = Path(temp_name)
    try:
        digest = hashlib.new(algorithm)
        with os.fdopen(handle, "wb") as out, _open(url, timeout=120) as response:
            for chunk in iter(lambda: response.read(DOWNLOAD_CHUNK), b""):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != expected:
            raise MavenDownloadError(
                f"checksum mismatch for {url}: {algorithm} {digest.hexdigest()} != published {expected}"
            )
        os.replace(temp_path, target)
    except OSError as error:
        raise MavenDownloadError(f"could not download {url}: {error}") from error
    finally:
        temp_path.unlink(missing_ok=True)
    _sidecar(target, algorithm).write_text(expected + "\n")
    return target
