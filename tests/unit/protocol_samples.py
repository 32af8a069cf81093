"""One valid instance of every protocol message, for round-trip and spec tests."""

from __future__ import annotations

from protocol.events import Event
from protocol.messages import (
    Auth,
    Bye,
    Capabilities,
    Drain,
    Events,
    EventsAck,
    FileSpec,
    Heartbeat,
    Hello,
    ImageInfo,
    JobAccept,
    JobCancel,
    JobDrop,
    JobFile,
    JobOffer,
    JobRefuse,
    JobResult,
    Message,
    Reject,
    ResultAck,
    RunningJob,
    Welcome,
)
from protocol.results import JobSummary, JobTimeouts, PhaseResult, TestCounts
from protocol.vocabulary import Outcome, PhaseStatus

CAPS = Capabilities(
    slots=2, accel="tcg", images=(ImageInfo(name="bookworm", python="3.11", digest="ab12"),)
)
EVENT = Event(seq=7, ts=1.5, level="info", event="phase_started", phase="install", fields={"n": 1})

SAMPLES: dict[str, Message] = {
    "hello": Hello(protocol_version="1.0", nonce=b"n" * 32, master="m"),
    "auth": Auth(
        name="s1",
        software_version="0.1",
        protocol_version="1.0",
        capabilities=CAPS,
        nonce=b"s" * 32,
        mac=b"x" * 32,
    ),
    "welcome": Welcome(
        session="abc",
        heartbeat_interval=5.0,
        heartbeat_timeout=20.0,
        max_frame=1 << 20,
        proof=b"p" * 32,
    ),
    "reject": Reject(reason="authentication failed"),
    "job_offer": JobOffer(
        job_id=1,
        lease=3,
        attempt=2,
        project="six",
        version="1.16.0",
        image="bookworm",
        files=(
            FileSpec(
                filename="six-1.16.0.tar.gz",
                sha256="0" * 64,
                size=10,
                packagetype="sdist",
                url="https://x/six.tgz",
            ),
        ),
        timeouts=JobTimeouts(install=60),
    ),
    "job_file": JobFile(job_id=1, lease=3, filename="a.whl", offset=0, data=b"PK", final=True),
    "job_accept": JobAccept(job_id=1, lease=3),
    "job_refuse": JobRefuse(job_id=1, lease=3, reason="no free slot"),
    "events": Events(job_id=1, lease=3, events=(EVENT,)),
    "events_ack": EventsAck(job_id=1, lease=3, seq=7),
    "job_result": JobResult(
        job_id=1,
        lease=3,
        outcome=Outcome.PASSED,
        isolation="tcg",
        last_seq=7,
        phases={"install": PhaseResult(PhaseStatus.PASSED)},
        summary=JobSummary(tests=TestCounts(passed=3)),
    ),
    "result_ack": ResultAck(job_id=1, lease=3),
    "job_cancel": JobCancel(job_id=1, lease=3, reason="cancelled by user"),
    "job_drop": JobDrop(job_id=1, lease=3, reason="stale lease"),
    "heartbeat": Heartbeat(
        ts=2.0, free_slots=1, running=(RunningJob(job_id=1, lease=3, last_seq=7),)
    ),
    "drain": Drain(reason="master shutting down"),
    "bye": Bye(reason="bye"),
}
