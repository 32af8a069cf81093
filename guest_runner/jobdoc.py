"""The job document (``job.json``): what the slave asks the guest runner to do.

One typed definition for both sides: the slave builds a :class:`JobDocument` and
writes :meth:`JobDocument.to_json`; the runner reads it back with
:meth:`JobDocument.from_json`, which checks every key and type and raises
:class:`JobDocumentError` naming the first key that is wrong. Unknown keys are
refused too: the slave and the image's runner come from the same checkout (the
image is rebuilt when the runner changes), so a key one side does not know is a bug.

Stdlib only: this module ships inside the guest's ``runner.pyz``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

PHASES = ("install", "import", "tests", "quality")
DEFAULT_TIMEOUTS = {"install": 600.0, "import": 120.0, "tests": 900.0, "quality": 120.0}
DEFAULT_OUTPUT_CAP = 1024 * 1024
# A plain pip install of a small sdist is ~1.5 MB of trace; its lines are the evidence.
DEFAULT_TRACE_CAP = 16 * 1024 * 1024
DEFAULT_NPROC = 512
#: Seconds the runner waits for the host's answer to the metadata it built.
DEFAULT_METADATA_WAIT = 1800.0
#: The file the host writes into the job directory when it has that answer.
DEPENDENCIES_READY = "dependencies.json"


class JobDocumentError(ValueError):
    """``job.json`` is not a valid job document; the message names the key."""


@dataclass(frozen=True, slots=True)
class JobDocument:
    """One job for the guest runner (schema: docs/contracts.md, "Guest runner").

    ``files`` are names in the job directory (the release's sdist/wheels; the
    wheelhouse sits there too). ``test_requirements`` are pip requirement strings
    (no markers) whose wheels the host put in the job directory; the tests phase
    installs them, best effort. ``timeouts`` maps a phase to seconds; a phase
    missing there gets :data:`DEFAULT_TIMEOUTS`.

    ``build_metadata``: the release has no static metadata; the install phase first
    builds it (stage ``metadata``), reports it and waits up to ``metadata_wait``
    seconds for the host to put the dependencies' wheels in the job directory and
    write :data:`DEPENDENCIES_READY`. ``build_requires`` (pip arguments) and
    ``build_imports`` (distributions ``setup.py`` imports without declaring them,
    their wheels in the job directory) are installed into the venv when a build
    fails on a missing module, before the build is retried without isolation.
    """

    job_id: int | str
    project: str
    version: str
    files: tuple[str, ...] = ()
    requirements: tuple[str, ...] = ()
    test_requirements: tuple[str, ...] = ()
    build_requires: tuple[str, ...] = ()
    build_imports: tuple[str, ...] = ()
    build_metadata: bool = False
    metadata_wait: float = DEFAULT_METADATA_WAIT
    phases: tuple[str, ...] = PHASES
    timeouts: Mapping[str, float] = field(default_factory=dict)
    output_cap: int = DEFAULT_OUTPUT_CAP
    trace_cap: int = DEFAULT_TRACE_CAP
    nproc_limit: int = DEFAULT_NPROC
    entropy: str | None = None  # hex; credited to the guest's RNG
    epoch: float | None = None  # seconds since the epoch; the guest's clock is set to it

    def timeout(self, phase: str) -> float:
        """Seconds ``phase`` may take."""
        return float(self.timeouts.get(phase) or DEFAULT_TIMEOUTS.get(phase, 300.0))

    def to_json(self) -> dict[str, Any]:
        """The JSON object ``from_json`` reads back (optional keys left out when unset)."""
        doc: dict[str, Any] = {
            "job_id": self.job_id,
            "project": self.project,
            "version": self.version,
            "files": list(self.files),
            "requirements": list(self.requirements),
            "test_requirements": list(self.test_requirements),
            "build_requires": list(self.build_requires),
            "build_imports": list(self.build_imports),
            "build_metadata": self.build_metadata,
            "metadata_wait": self.metadata_wait,
            "phases": list(self.phases),
            "timeouts": dict(self.timeouts),
            "output_cap": self.output_cap,
            "trace_cap": self.trace_cap,
            "nproc_limit": self.nproc_limit,
        }
        if self.entropy is not None:
            doc["entropy"] = self.entropy
        if self.epoch is not None:
            doc["epoch"] = self.epoch
        return doc

    @classmethod
    def from_json(cls, data: object) -> JobDocument:
        """Check and convert a decoded ``job.json``; raises :class:`JobDocumentError`."""
        if not isinstance(data, dict):
            raise JobDocumentError(f"job.json: expected an object, got {_kind(data)}")
        unknown = sorted(set(data) - _KEYS)
        if unknown:
            raise JobDocumentError(f"job.json: unknown key {unknown[0]!r}")
        for key in ("job_id", "project", "version"):
            if key not in data:
                raise JobDocumentError(f"job.json: {key!r} is missing")
        job_id = data["job_id"]
        if isinstance(job_id, bool) or not isinstance(job_id, int | str):
            raise JobDocumentError(
                f"job.json: 'job_id' must be an int or a string, got {_kind(job_id)}"
            )
        files = _strings(data, "files")
        for name in files:
            if not name or "/" in name or name in (".", ".."):
                raise JobDocumentError(f"job.json: 'files' holds {name!r}, not a plain file name")
        phases = _strings(data, "phases", PHASES)
        for phase in phases:
            if phase not in PHASES:
                raise JobDocumentError(f"job.json: 'phases' holds unknown phase {phase!r}")
        timeouts = data.get("timeouts", {})
        if not isinstance(timeouts, dict):
            raise JobDocumentError(f"job.json: 'timeouts' must be an object, got {_kind(timeouts)}")
        checked: dict[str, float] = {}
        for phase, seconds in timeouts.items():
            if phase not in PHASES:
                raise JobDocumentError(f"job.json: 'timeouts' names unknown phase {phase!r}")
            checked[phase] = _positive(seconds, f"timeouts.{phase}")
        entropy = data.get("entropy")
        if entropy is not None and not isinstance(entropy, str):
            raise JobDocumentError(
                f"job.json: 'entropy' must be a hex string, got {_kind(entropy)}"
            )
        epoch = data.get("epoch")
        build_metadata = data.get("build_metadata", False)
        if not isinstance(build_metadata, bool):
            raise JobDocumentError(
                f"job.json: 'build_metadata' must be a boolean, got {_kind(build_metadata)}"
            )
        return cls(
            job_id=job_id,
            project=_string(data, "project"),
            version=_string(data, "version"),
            files=files,
            requirements=_strings(data, "requirements"),
            test_requirements=_strings(data, "test_requirements"),
            build_requires=_strings(data, "build_requires"),
            build_imports=_strings(data, "build_imports"),
            build_metadata=build_metadata,
            metadata_wait=_positive(
                data.get("metadata_wait", DEFAULT_METADATA_WAIT), "metadata_wait"
            ),
            phases=phases,
            timeouts=checked,
            output_cap=_count(data, "output_cap", DEFAULT_OUTPUT_CAP),
            trace_cap=_count(data, "trace_cap", DEFAULT_TRACE_CAP),
            nproc_limit=_count(data, "nproc_limit", DEFAULT_NPROC),
            entropy=entropy,
            epoch=None if epoch is None else _number(epoch, "epoch"),
        )


_KEYS = frozenset(f for f in JobDocument.__dataclass_fields__)


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _string(data: dict[str, Any], key: str) -> str:
    value = data[key]
    if not isinstance(value, str):
        raise JobDocumentError(f"job.json: {key!r} must be a string, got {_kind(value)}")
    return value


def _strings(data: dict[str, Any], key: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
    value = data.get(key)
    if value is None:
        return default
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise JobDocumentError(f"job.json: {key!r} must be a list of strings")
    return tuple(value)


def _number(value: object, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise JobDocumentError(f"job.json: {key!r} must be a number, got {_kind(value)}")
    if not math.isfinite(value):
        raise JobDocumentError(f"job.json: {key!r} must be finite, got {value!r}")
    return float(value)


def _positive(value: object, key: str) -> float:
    number = _number(value, key)
    if number <= 0:
        raise JobDocumentError(f"job.json: {key!r} must be positive, got {value!r}")
    return number


def _count(data: dict[str, Any], key: str, default: int) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise JobDocumentError(f"job.json: {key!r} must be a positive integer, got {value!r}")
    return value
