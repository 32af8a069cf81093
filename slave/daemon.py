"""The slave daemon: takes jobs from the master, runs them, reports them, loses nothing.

It owns a :class:`~slave.link.Link` (the master connection), a
:class:`~slave.spool.SpoolStore` (every job's unacknowledged events and
result, on disk), the download cache's trim task
(:class:`~slave.prepare.cache_trim.CacheTrimmer`) and the jobs it holds
(:class:`~slave.job.active.ActiveJob`), and runs each job with a pluggable
:class:`~slave.job.context.Executor`.

Lifecycle: :meth:`SlaveDaemon.run` first recovers spools left by a previous
process (a job that was running then is reported as ``infra_error``; events
and results not acknowledged are re-sent), then connects. :meth:`request_stop`
(SIGTERM) stops taking jobs, gives running jobs ``shutdown_grace`` seconds,
aborts the rest (reported as ``infra_error``, so the master retries them),
waits briefly for the master to acknowledge the results, and returns. What
is still unacknowledged stays in the spool for the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import structlog

from protocol.errors import ConnectionClosed
from protocol.messages import (
    OUTCOMES,
    Capabilities,
    Drain,
    EventsAck,
    Heartbeat,
    ImageInfo,
    JobAccept,
    JobCancel,
    JobDrop,
    JobFile,
    JobOffer,
    JobRefuse,
    JobResult,
    Message,
    ResultAck,
    RunningJob,
)
from protocol.results import JobSummary, PhaseResult
from protocol.vocabulary import Outcome
from pyti.tasks import cancel_and_wait
from slave.config import SlaveConfig
from slave.job.active import ActiveJob, ActiveState
from slave.job.context import Executor, JobContext
from slave.job.record import default_reason
from slave.link import Backoff, Link
from slave.prepare.cache import BlobCache
from slave.prepare.cache_trim import CacheTrimmer
from slave.spool import JobSpool, SpoolLimits, SpoolStore

log = structlog.get_logger(__name__)

SOFTWARE_VERSION = "pyti-slave 0.1.0"
#: Seconds after shutdown during which the master may still acknowledge results.
_ACK_WAIT = 10.0


class SlaveDaemon:
    """One slave (see the module docstring)."""

    def __init__(
        self,
        config: SlaveConfig,
        *,
        images: Sequence[ImageInfo],
        accel: str,
        executor: Executor,
    ) -> None:
        self.config = config
        self.images = {i.name: i for i in images}
        self.accel = accel
        self.executor = executor
        self.store = SpoolStore(
            config.work_dir / "spool", SpoolLimits(max_bytes=config.spool_max_bytes)
        )
        self.jobs: dict[int, ActiveJob] = {}
        self.cache = CacheTrimmer(
            BlobCache(config.work_dir / "cache"),
            config.cache_max_bytes,
            config.cache_trim_interval,
        )
        #: the master session in which the master asked us to drain (None: not asked)
        self._drain_session: int | None = None
        self._stop = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self.link = Link(
            host=config.master_host,
            port=config.master_port,
            secret=config.secret,
            name=config.name,
            software_version=SOFTWARE_VERSION,
            capabilities=self.capabilities,
            heartbeat=self.heartbeat,
            handle=self.handle,
            spools=self._spools,
            backoff=Backoff(config.reconnect_min, config.reconnect_max),
            events_per_batch=config.events_per_batch,
            ssl_context=config.ssl_context(),
            server_hostname=config.tls_server_name,
        )

    @property
    def draining(self) -> bool:
        """No new jobs: we are stopping, or the master of *this* session asked us to drain.

        A master drains its slaves when it shuts down; once it (or another) is
        back, the new session starts undrained.
        """
        return self._stop.is_set() or self._drain_session == self.link.sessions

    def __repr__(self) -> str:
        return f"<SlaveDaemon {self.config.name} jobs={len(self.jobs)} {self.link.state.value}>"

    # ------------------------------------------------------------ reporting --

    def capabilities(self) -> Capabilities:
        """What this slave offers (sent in ``auth``)."""
        return Capabilities(
            slots=self.config.slots,
            accel="kvm" if self.accel == "kvm" else "tcg",
            images=tuple(self.images.values()),
        )

    @property
    def executing(self) -> int:
        """Jobs that occupy a slot (receiving files or running)."""
        busy = (ActiveState.RECEIVING, ActiveState.RUNNING)
        return sum(1 for j in self.jobs.values() if j.state in busy)

    def heartbeat(self) -> Heartbeat:
        """A snapshot for the master: free slots and every job not yet acknowledged.

        Jobs whose result awaits ``result_ack`` are listed too: they are still
        ours, and the master must not re-queue them while the result is in flight.
        """
        free = 0 if self.draining else max(0, self.config.slots - self.executing)
        disk_short = self._disk_short() is not None
        if disk_short:
            free = 0  # the master offers nothing until space returns
        running = tuple(
            RunningJob(job_id=j.offer.job_id, lease=j.offer.lease, last_seq=j.last_seq)
            for j in self.jobs.values()
        )
        return Heartbeat(
            ts=time.time(),
            free_slots=free,
            running=running,
            draining=self.draining,
            cache_bytes=self.cache.cache_bytes,
            cache_evicted_bytes=self.cache.evicted_bytes,
            disk_short=disk_short,
        )

    def _spools(self) -> Iterable[JobSpool]:
        return [j.spool for j in self.jobs.values() if j.state is not ActiveState.DROPPED]

    # ------------------------------------------------------------ lifecycle --

    async def run(self) -> None:
        """Recover old spools, connect, serve until :meth:`request_stop`; then shut down.

        Returns after the shutdown described in the module docstring. If
        cancelled, running jobs are cancelled (their VMs stopped) before it returns.
        """
        self._recover(await asyncio.to_thread(self.store.load_all))
        link_task = asyncio.create_task(self.link.run(), name="slave-link")
        cache_task = asyncio.create_task(self.cache.run(), name="slave-cache-trim")
        try:
            await self._stop.wait()
            await self._shutdown()
        finally:
            # Jobs first (a cancelled job reports nothing), then the link.
            for error in await cancel_and_wait(
                *(j.task for j in self.jobs.values() if j.task is not None)
            ):
                log.error("job_task_failed", error=repr(error))
            for error in await cancel_and_wait(link_task):
                log.error("link_failed", error=repr(error))
            for error in await cancel_and_wait(cache_task):
                log.error("cache_trim_crashed", error=repr(error))
            for job in self.jobs.values():
                job.spool.close()

    def request_stop(self) -> None:
        """Begin a graceful shutdown (SIGTERM). Idempotent."""
        if not self._stop.is_set():
            log.info("slave_stopping", jobs=len(self.jobs))
        self._stop.set()

    async def _shutdown(self) -> None:
        tasks = [j.task for j in self.jobs.values() if j.task is not None and not j.task.done()]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self.config.shutdown_grace)
            for job in list(self.jobs.values()):
                if job.task is not None and job.task in pending:
                    job.stop(Outcome.INFRA_ERROR, "the slave shut down before the job finished")
            if pending:
                await asyncio.wait(pending)
        # Give the master a moment to take the results; what it misses stays spooled.
        if self.jobs and self.link.connected.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_ACK_WAIT):
                    await self._idle.wait()

    def _recover(self, spools: list[JobSpool]) -> None:
        """Adopt spools of a previous run: their events and results are still owed.

        Runs once at start-up, before connecting (small synchronous writes are fine).
        """
        for spool in spools:
            offer = JobOffer(
                job_id=spool.job_id,
                lease=spool.lease,
                attempt=int(spool.meta.get("attempt", 1)),
                project=str(spool.meta.get("project", "")),
                version=str(spool.meta.get("version", "")),
                image=str(spool.meta.get("image", "")),
                files=(),
                first_seq=int(spool.meta.get("first_seq", 1)),
            )
            job = ActiveJob(offer, spool, self._job_dir(spool.job_id), self.link.wake)
            self.jobs[spool.job_id] = job
            self._idle.clear()
            if spool.result is None:
                # The process died mid-job: its VM is gone; say so and let the master retry.
                job.set_state(ActiveState.RUNNING)
                job.log.error("job_lost", reason="the slave restarted during the job")
                self._finish_sync(
                    job, Outcome.INFRA_ERROR, JobSummary(error="slave restarted during the job")
                )
            else:
                job.set_state(ActiveState.REPORTED)
            log.info("spool_recovered", job_id=spool.job_id, lease=spool.lease,
                     unacked=spool.last_seq - spool.acked_seq)  # fmt: skip
        shutil.rmtree(self.config.work_dir / "jobs", ignore_errors=True)

    def _job_dir(self, job_id: int) -> Path:
        return self.config.work_dir / "jobs" / str(job_id)

    # ------------------------------------------------------------- messages --

    async def handle(self, msg: Message) -> None:
        """React to one message from the master (called by the link's reader)."""
        match msg:
            case JobOffer():
                await self._on_offer(msg)
            case JobFile():
                job = self._match(msg.job_id, msg.lease)
                if job is not None and job.state is ActiveState.RECEIVING:
                    job.add_chunk(msg)
            case EventsAck():
                job = self._match(msg.job_id, msg.lease)
                if job is not None:
                    job.spool.ack(msg.seq)
            case ResultAck():
                job = self._match(msg.job_id, msg.lease)
                if job is not None and job.state is ActiveState.REPORTED:
                    self._forget(job)
            case JobCancel():
                job = self._match(msg.job_id, msg.lease)
                if job is not None and job.inner is not None and not job.inner.done():
                    log.info("job_cancel_requested", job_id=msg.job_id, reason=msg.reason)
                    job.stop("cancelled", msg.reason)
            case JobDrop():
                job = self._match(msg.job_id, msg.lease)
                if job is not None:
                    await self._drop(job, msg.reason)
            case Drain():
                log.info("slave_draining", reason=msg.reason)
                self._drain_session = self.link.sessions
            case _:
                pass  # heartbeats: the connection already noted the peer is alive

    def _match(self, job_id: int, lease: int) -> ActiveJob | None:
        """The held job with this id and lease; a stale lease matches nothing."""
        job = self.jobs.get(job_id)
        return job if job is not None and job.offer.lease == lease else None

    def _refusal(self, offer: JobOffer) -> str | None:
        if self.draining:
            return "the slave is draining"
        if offer.job_id in self.jobs:
            return "the slave already holds this job"
        if offer.image not in self.images:
            return f"no image {offer.image!r} on this slave"
        if self.executing >= self.config.slots:
            return "no free slot"
        return self._disk_short()

    def _disk_short(self) -> str | None:
        """Why the work dir cannot take a job (under ``min_free_mb`` free), or None."""
        where = self.config.work_dir
        while not where.exists() and where != where.parent:
            where = where.parent  # made at the first job, on the file system of its parent
        try:
            stat = os.statvfs(where)
        except OSError as exc:
            return f"the slave's work dir cannot be read: {exc.strerror}"
        free_mb = stat.f_bavail * stat.f_frsize // (1 << 20)
        if free_mb >= self.config.min_free_mb:
            return None
        return (
            f"the slave's work dir is nearly full: {free_mb} MiB free, "
            f"below min_free_mb = {self.config.min_free_mb}"
        )

    async def _on_offer(self, offer: JobOffer) -> None:
        reason = self._refusal(offer)
        if reason is not None:
            log.info("job_refused", job_id=offer.job_id, reason=reason)
            with contextlib.suppress(ConnectionClosed):
                await self.link.send(JobRefuse(offer.job_id, offer.lease, reason))
            return
        meta = {
            "job_id": offer.job_id,
            "lease": offer.lease,
            "attempt": offer.attempt,
            "project": offer.project,
            "version": offer.version,
            "image": offer.image,
            "first_seq": offer.first_seq,
        }
        try:
            spool = await asyncio.to_thread(self.store.create, meta)
        except OSError as exc:
            log.error("spool_create_failed", job_id=offer.job_id, error=str(exc))
            with contextlib.suppress(ConnectionClosed):
                await self.link.send(JobRefuse(offer.job_id, offer.lease, "slave disk error"))
            return
        try:
            # Accept goes out before any event of the job can (same queue, in order): the
            # job only becomes visible to the link's pump below.
            await self.link.send(JobAccept(offer.job_id, offer.lease))
        except ConnectionClosed:
            await asyncio.to_thread(spool.remove)
            return  # the master re-queues an offer it got no answer for
        job = ActiveJob(offer, spool, self._job_dir(offer.job_id), self.link.wake)
        self.jobs[offer.job_id] = job
        self._idle.clear()
        job.task = asyncio.create_task(self._run_job(job), name=f"job-{offer.job_id}")

    async def _drop(self, job: ActiveJob, reason: str) -> None:
        log.info("job_dropped", job_id=job.offer.job_id, lease=job.offer.lease, reason=reason)
        prior = job.state
        job.set_state(ActiveState.DROPPED)
        if job.task is not None and not job.task.done() and prior is not ActiveState.REPORTED:
            await cancel_and_wait(job.task)  # _run_job never raises
        self._forget(job)

    def _forget(self, job: ActiveJob) -> None:
        job.spool.remove()
        if self.jobs.get(job.offer.job_id) is job:
            del self.jobs[job.offer.job_id]
        if not self.jobs:
            self._idle.set()
        self.cache.poke()

    # ------------------------------------------------------------------ jobs --

    async def _run_job(self, job: ActiveJob) -> None:
        """Run one job to a result; never raises (except the task's own cancellation)."""
        ctx = JobContext(
            offer=job.offer,
            config=self.config,
            isolation=self.accel,
            job_dir=job.job_dir,
            uploads={},
            log=job.log,
            emit=job.emit,
        )
        outcome, error = Outcome.INFRA_ERROR.value, ""
        job.log.info(
            "job_started",
            project=job.offer.project,
            version=job.offer.version,
            image=job.offer.image,
            attempt=job.offer.attempt,
            isolation=self.accel,
        )
        # The executor runs in a task of its own: job_cancel and a shutdown abort cancel
        # only it (and the job reports), while cancelling this task (job_drop, a hard
        # stop) stops the executor first and reports nothing.
        inner = job.inner = asyncio.create_task(self._execute(job, ctx))
        try:
            await asyncio.wait([inner])
        except asyncio.CancelledError:
            inner.cancel()
            await asyncio.wait([inner])
            await asyncio.to_thread(shutil.rmtree, job.job_dir, True)
            raise
        try:
            if inner.cancelled():
                outcome, error = job.stop_outcome or "cancelled", job.stop_reason
            elif (exc := inner.exception()) is not None:
                error = f"{type(exc).__name__}: {exc}"[:2000]
                job.log.error("job_error", error=error)
            elif (result := inner.result()) not in OUTCOMES:
                error = f"the executor returned an unknown outcome {result!r}"
            else:
                outcome = result
        finally:
            await asyncio.to_thread(shutil.rmtree, job.job_dir, True)
        if error:
            ctx.summary.error = ctx.summary.error or error
        await self._finish(job, outcome, ctx.phases, ctx.summary)

    async def _execute(self, job: ActiveJob, ctx: JobContext) -> str:
        if not job.uploads_done.is_set():
            try:
                async with asyncio.timeout(self.config.upload_wait):
                    await job.uploads_done.wait()
            except TimeoutError:
                raise RuntimeError("uploaded files did not arrive in time") from None
        if job.upload_error is not None:
            raise job.upload_error
        ctx.uploads = job.uploaded_files()
        job.set_state(ActiveState.RUNNING)
        return await self.executor.run(ctx)

    async def _finish(
        self, job: ActiveJob, outcome: str, phases: dict[str, PhaseResult], summary: JobSummary
    ) -> None:
        """Log the end, persist the result (fsync in a thread), hand it to the link."""
        result = self._result(job, outcome, phases, summary)
        await asyncio.to_thread(job.spool.save_result, result)
        job.set_state(ActiveState.REPORTED)
        self.link.wake()

    def _finish_sync(self, job: ActiveJob, outcome: str, summary: JobSummary) -> None:
        job.spool.save_result(self._result(job, outcome, {}, summary))
        job.set_state(ActiveState.REPORTED)

    def _result(
        self, job: ActiveJob, outcome: str, phases: dict[str, PhaseResult], summary: JobSummary
    ) -> JobResult:
        if job.events_dropped:
            summary.events_dropped = job.events_dropped
        if job.spool.disk_error:
            summary.spool_error = job.spool.disk_error
        if not summary.reason and (reason := default_reason(outcome, summary)):
            summary.reason = reason
        job.log.info("job_finished", outcome=outcome)
        return JobResult(
            job_id=job.offer.job_id,
            lease=job.offer.lease,
            outcome=Outcome(outcome),  # checked against OUTCOMES by the callers
            isolation=self.accel,
            last_seq=job.spool.last_seq,
            phases=phases,
            summary=summary,
        )
