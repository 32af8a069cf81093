"""Every message pyti's master and slaves exchange, with its stable ``type`` tag.

A message is a frozen dataclass registered with ``@message("tag")``. On the wire
it is a msgpack map ``{"type": tag, **fields}``. ``decode`` validates: an unknown
tag, a missing field or a field of the wrong type raises ``InvalidMessage``
naming what was wrong; unknown extra fields are ignored. Delivery semantics of
each message are in ``protocol/README.md`` (a test keeps the two in step).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, TypeVar

from protocol.errors import InvalidMessage
from protocol.events import Event
from protocol.results import JobOptions, JobSummary, JobTimeouts, Phases
from protocol.schema import decoder, encode_record, record
from protocol.vocabulary import Outcome, values

PROTOCOL_VERSION = "1.0"

#: The outcomes a result may carry (``protocol.vocabulary.Outcome``, as wire strings).
OUTCOMES: tuple[str, ...] = values(Outcome)
Accel = Literal["kvm", "tcg"]


class Message:
    """Base of all messages; ``TYPE`` is the wire tag."""

    __slots__ = ()
    TYPE: ClassVar[str]


M = TypeVar("M", bound=type[Message])

#: tag -> message class; filled by ``@message``.
REGISTRY: dict[str, type[Message]] = {}
_DECODERS: dict[str, Callable[[Any, str], Message]] = {}


def message(tag: str) -> Any:
    """Register a message dataclass under its wire tag."""

    def register(cls: M) -> M:
        if tag in REGISTRY:
            raise TypeError(f"duplicate message tag {tag!r}")
        cls.TYPE = tag
        REGISTRY[tag] = cls
        record(cls)
        return cls

    return register


def encode(msg: Message) -> dict[str, Any]:
    """The wire map of a message."""
    wire = encode_record(msg)
    wire["type"] = msg.TYPE
    return wire


def decode(obj: dict[str, Any]) -> Message:
    """The message a wire map holds, or ``InvalidMessage`` saying what is wrong."""
    tag = obj.get("type")
    if type(tag) is not str:
        raise InvalidMessage("missing or non-string 'type' tag")
    dec = _DECODERS.get(tag)
    if dec is None:
        cls = REGISTRY.get(tag)
        if cls is None:
            raise InvalidMessage(f"unknown message type {tag[:64]!r}")
        dec = _DECODERS[tag] = decoder(cls)
    try:
        return dec(obj, "")
    except InvalidMessage as exc:
        raise InvalidMessage(exc.detail, msg_type=tag) from None


# ---------------------------------------------------------------- records ----


@record
@dataclass(frozen=True, slots=True)
class ImageInfo:
    """A guest image a slave can run jobs in."""

    name: str
    python: str
    digest: str


@record
@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a slave offers: concurrent VM slots, accelerator, images."""

    slots: int
    accel: Accel
    images: tuple[ImageInfo, ...]


@record
@dataclass(frozen=True, slots=True)
class FileSpec:
    """A release file: from PyPI (``url``) or uploaded through the master (``url`` empty)."""

    filename: str
    sha256: str
    size: int
    packagetype: str  # "sdist" | "bdist_wheel"
    url: str = ""


@record
@dataclass(frozen=True, slots=True)
class RunningJob:
    """A job a slave is working on, with the highest event sequence it has produced."""

    job_id: int
    lease: int
    last_seq: int


# ------------------------------------------------------------- handshake ----


@message("hello")
@dataclass(frozen=True, slots=True)
class Hello(Message):
    """Master → slave, first frame: protocol version and a fresh 32-byte nonce."""

    protocol_version: str
    nonce: bytes
    master: str


@message("auth")
@dataclass(frozen=True, slots=True)
class Auth(Message):
    """Slave → master: who it is, what it offers, and HMACs proving the shared secret."""

    name: str
    software_version: str
    protocol_version: str
    capabilities: Capabilities
    nonce: bytes
    mac: bytes


@message("welcome")
@dataclass(frozen=True, slots=True)
class Welcome(Message):
    """Master → slave: accepted; connection parameters and the master's own proof."""

    session: str
    heartbeat_interval: float
    heartbeat_timeout: float
    max_frame: int
    proof: bytes


@message("reject")
@dataclass(frozen=True, slots=True)
class Reject(Message):
    """Master → slave: refused (reason safe to show); the master closes after it."""

    reason: str


# ------------------------------------------------------------------ jobs ----


@message("job_offer")
@dataclass(frozen=True, slots=True)
class JobOffer(Message):
    """Master → slave: run this job under this lease."""

    job_id: int
    lease: int
    attempt: int
    project: str
    version: str
    image: str
    files: tuple[FileSpec, ...]
    timeouts: JobTimeouts = field(default_factory=JobTimeouts)
    options: JobOptions = field(default_factory=JobOptions)
    first_seq: int = 1


@message("job_file")
@dataclass(frozen=True, slots=True)
class JobFile(Message):
    """Master → slave: a chunk of an uploaded distribution file of an offered job."""

    job_id: int
    lease: int
    filename: str
    offset: int
    data: bytes
    final: bool


@message("job_accept")
@dataclass(frozen=True, slots=True)
class JobAccept(Message):
    """Slave → master: the offered job is taken."""

    job_id: int
    lease: int


@message("job_refuse")
@dataclass(frozen=True, slots=True)
class JobRefuse(Message):
    """Slave → master: the offered job is not taken (no slot, no such image, draining)."""

    job_id: int
    lease: int
    reason: str


@message("events")
@dataclass(slots=True)  # not frozen: built and decoded once per event batch, the hot path
class Events(Message):
    """Slave → master: a batch of a job's log events, in sequence order."""

    job_id: int
    lease: int
    events: tuple[Event, ...]


@message("events_ack")
@dataclass(frozen=True, slots=True)
class EventsAck(Message):
    """Master → slave: every event of the job with ``seq`` ≤ this is stored."""

    job_id: int
    lease: int
    seq: int


@message("job_result")
@dataclass(frozen=True, slots=True)
class JobResult(Message):
    """Slave → master: the job's outcome, per-phase statuses and summary."""

    job_id: int
    lease: int
    outcome: Outcome
    isolation: str
    last_seq: int
    phases: Phases = field(default_factory=dict)
    summary: JobSummary = field(default_factory=JobSummary)


@message("result_ack")
@dataclass(frozen=True, slots=True)
class ResultAck(Message):
    """Master → slave: the result is stored (or recorded as stale); forget the job."""

    job_id: int
    lease: int


@message("job_cancel")
@dataclass(frozen=True, slots=True)
class JobCancel(Message):
    """Master → slave: stop the job now and report it as ``cancelled``."""

    job_id: int
    lease: int
    reason: str


@message("job_drop")
@dataclass(frozen=True, slots=True)
class JobDrop(Message):
    """Master → slave: the lease is stale (the job was re-queued); stop and forget it."""

    job_id: int
    lease: int
    reason: str


# ------------------------------------------------------------- liveness ----


@message("heartbeat")
@dataclass(frozen=True, slots=True)
class Heartbeat(Message):
    """Both ways: alive. From a slave also its free slots and running jobs."""

    ts: float
    free_slots: int = 0
    running: tuple[RunningJob, ...] = ()
    draining: bool = False
    #: from a slave: bytes in its download cache, and evicted from it since it started
    cache_bytes: int = 0
    cache_evicted_bytes: int = 0
    #: from a slave: its work dir has less than ``min_free_mb`` free (it takes no job)
    disk_short: bool = False


@message("drain")
@dataclass(frozen=True, slots=True)
class Drain(Message):
    """Master → slave: take no new jobs; finish (or abort and report) the running ones."""

    reason: str


@message("bye")
@dataclass(frozen=True, slots=True)
class Bye(Message):
    """Either way: a deliberate close; the sender closes after it."""

    reason: str


def message_types() -> list[str]:
    """All registered wire tags (the spec test checks each is documented)."""
    return sorted(REGISTRY)
