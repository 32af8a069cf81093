"""The real job executor: one release tested in one fresh VM, step by step.

1. **prepare** (host): ``prepare_release`` fetches the release files (sha256
   checked) and dependency wheels, never running package code. Without static
   metadata, the guest runner builds it (stage ``metadata`` of install, traced
   like all package code) and the host fetches the dependencies it names while
   the runner waits (``_answer_metadata``). A release wheel whose
   ``Requires-Python`` excludes the image's Python (the guest's uv would install
   it) fails install right here, with pip's words (``refuse_install``); the VM
   booting meanwhile is stopped unused.
2. **boot**: ``VM.start`` (snapshot restore when one fits) and ``Guest.connect``.
3. **upload**: release files, wheelhouse and ``job.json`` over SFTP.
4. **install / import / tests / quality**: the guest runner, streamed line by
   line into events; findings analysed as trace lines arrive; guest phase
   timeouts also enforced from here (a hung runner gets its VM killed).
5. **verdict**: findings verdict, quality report, crash details, outcome.
6. **teardown**: the VM is stopped on every path (also on cancel, at once).
   A job that failed because its VM died says how first (``summary.vm_exit``).

Every failure of the machinery (prepare, VM, SSH) makes the job an
``infra_error`` with the reason in ``summary.error``; a preparation error that is
the package's own (malformed metadata: ``failed``) or that leaves nothing to test
(no file for the guest, dependencies with no wheel: ``incomplete``) is that outcome
instead (``PrepareError.outcome``), never retried. Every outcome but a plain
``passed`` has a one-line ``summary.reason``.
What the package's own code does (hang, crash, fail its build, even while building
metadata) is its result.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine, Mapping
from typing import Any

from protocol.results import ImageRef
from protocol.vocabulary import Outcome, Verdict
from slave.config import DEFAULT_PYPI_URL, SlaveConfig
from slave.findings import Context, Finding
from slave.findings.static_build import undeclared_import_findings
from slave.findings.static_scan import static_findings
from slave.image_builder.manifest import Image
from slave.job.context import JobContext
from slave.job.phases import (
    GUEST_JOB_DIR,
    HostPhaseTimeout,
    answer_metadata,
    host_phase,
    phase_timeout,
    refuse_install,
    run_runner,
    upload,
)
from slave.job.record import Decision, RunRecord, default_reason
from slave.prepare import (
    DependencyUnavailable,
    GuestTarget,
    PipOptions,
    PreparedRelease,
    PrepareError,
    ReleaseRequest,
    download_wheels,
    prepare_release,
    requirements_from_guest,
)
from slave.quality import build_report, runtime_indicators, static_indicators
from slave.quality.indicator import Indicator
from slave.vm.accel import Accel
from slave.vm.errors import VMError
from slave.vm.guest import Guest, GuestError
from slave.vm.machine import VM

_MACHINE_ERRORS = (PrepareError, VMError, GuestError, HostPhaseTimeout)


def pip_options(config: SlaveConfig) -> PipOptions | None:
    """pip pointed at ``--pypi-url``'s simple index, unless that is PyPI itself."""
    if config.pypi_url.rstrip("/") == DEFAULT_PYPI_URL:
        return None
    return PipOptions(index_url=config.pypi_url.rstrip("/") + "/simple")


class VMExecutor:
    """Runs jobs in VMs of the given images (see the module docstring)."""

    def __init__(
        self,
        images: Mapping[str, Image],
        accel: Accel,
        config: SlaveConfig,
        *,
        pip: PipOptions | None = None,
        snapshot: bool = True,
    ) -> None:
        self.images = dict(images)
        self.accel = accel
        self.config = config
        self.pip = pip if pip is not None else pip_options(config)
        self.snapshot = snapshot

    async def run(self, ctx: JobContext) -> str:
        """Run the job; returns its outcome. Cancellation stops the VM and propagates."""
        image = self.images[ctx.offer.image]
        ctx.summary.image = ImageRef(name=image.name, digest=image.digest)
        record = RunRecord(
            Context(bait_token=image.bait.get("token")), emulated=self.accel is Accel.TCG
        )
        static: asyncio.Task[list[Indicator]] | None = None
        scan: asyncio.Task[list[Finding]] | None = None
        # The VM boots while the host prepares: both take seconds and neither needs the other.
        booting = asyncio.create_task(self._boot(ctx, image))
        booted: tuple[VM, Guest] | None = None
        refused: Decision | None = None
        try:
            async with host_phase(ctx, "prepare", phase_timeout(ctx, "prepare")):
                prepared = await self._prepare(ctx, image)
            ctx.summary.prepare = prepared.summary()
            record.substituted = tuple(prepared.test_substituted)
            static = asyncio.create_task(
                asyncio.to_thread(
                    static_indicators, prepared.files, unavailable=prepared.test_unavailable
                )
            )
            scan = asyncio.create_task(asyncio.to_thread(_static_findings, prepared))
            if prepared.python_refused is not None:
                # uv in the guest would install it anyway: refused here, the VM never used
                refuse_install(ctx, record, prepared.python_refused)
            else:
                booted = await booting
                await unless_disk_fails(
                    booted[0], self._in_vm(ctx, image, booted[1], prepared, record)
                )
            await self._static_scan(ctx, scan, record)
        except PrepareError as exc:
            if exc.outcome is Outcome.INFRA_ERROR:
                ctx.summary.error = ctx.summary.error or str(exc)[:2000]
                ctx.log.error("job_infra_error", error=str(exc)[:2000])
            else:
                refused = Decision(exc.outcome, exc.reason_line())
                ctx.log.warning(
                    "job_refused_at_prepare", outcome=exc.outcome, error=str(exc)[:2000]
                )
        except _MACHINE_ERRORS as exc:
            ctx.summary.error = ctx.summary.error or str(exc)[:2000]
            ctx.log.error("job_infra_error", error=str(exc)[:2000])
        except BaseException:
            if static is not None:  # cancelled: the quality report is never made
                static.cancel()
            raise
        finally:
            if scan is not None and not scan.done():  # its findings are wanted only in the try
                scan.cancel()
            ctx.phases.update(record.phases)
            booted = booted or await _settle(booting)
            if booted is not None:
                await _note_vm_death(ctx, booted[0])
                await self._teardown(ctx, *booted)
        record.fill(ctx.summary)
        if static is not None:
            await self._quality(ctx, static, record)
        if ctx.summary.error is not None:
            decision = Decision(
                Outcome.INFRA_ERROR, default_reason(Outcome.INFRA_ERROR, ctx.summary)
            )
        elif refused is not None and record.verdict() != Verdict.MALICIOUS:
            decision = refused
        else:
            decision = record.decide()
        if decision.reason:
            ctx.summary.reason = decision.reason
        ctx.log.info(
            "verdict",
            phase="verdict",
            verdict=record.verdict(),
            findings=len(record.findings),
            outcome=decision.outcome,
            reason=decision.reason,
        )
        return decision.outcome

    async def _prepare(self, ctx: JobContext, image: Image) -> PreparedRelease:
        request = ReleaseRequest(project=ctx.offer.project, version=ctx.offer.version or None)
        uploads = {s.filename: s for s in ctx.offer.files if not s.url}
        if uploads:
            name, path = next(iter(ctx.uploads.items()))
            request = ReleaseRequest(
                project=ctx.offer.project, uploaded=path, uploaded_sha256=uploads[name].sha256
            )
        return await prepare_release(
            request,
            pypi_url=self.config.pypi_url,
            cache_dir=self.config.work_dir / "cache",
            work_dir=ctx.job_dir / "prepare",
            python_version=image.python_version,
            platform=str(image.manifest.get("platform") or self.config.guest_platform),
            guest_python=image.python_full_version,
            pip=self.pip,
        )

    async def _boot(self, ctx: JobContext, image: Image) -> tuple[VM, Guest]:
        """A running VM and an SSH session to it; on failure or cancel, no VM is left."""
        timeout = phase_timeout(ctx, "boot")
        async with host_phase(ctx, "boot", timeout):
            vm = await VM.start(
                image,
                ctx.job_dir / "vm",
                self.accel,
                snapshot=self.snapshot,
                memory_mb=self.config.memory_mb,
                cpus=self.config.cpus,
                timeout=timeout,
            )
            try:
                guest = await Guest.connect(vm, image, timeout=timeout)
            except BaseException:
                await vm.stop(grace=0.0)
                raise
            ctx.log.info("vm_ready", phase="boot", restored=vm.restored, accel=self.accel.value)
        return vm, guest

    async def _in_vm(
        self,
        ctx: JobContext,
        image: Image,
        guest: Guest,
        prepared: PreparedRelease,
        record: RunRecord,
    ) -> None:
        async with host_phase(ctx, "upload", phase_timeout(ctx, "upload")):
            await upload(ctx, guest, prepared)

        async def on_metadata(fields: Mapping[str, Any]) -> None:
            await self._answer_metadata(ctx, guest, prepared, image, fields)

        await run_runner(ctx, guest, record, on_metadata)

    async def _answer_metadata(
        self,
        ctx: JobContext,
        guest: Guest,
        prepared: PreparedRelease,
        image: Image,
        fields: Mapping[str, Any],
    ) -> None:
        """The runner built the metadata (traced): fetch the dependencies it names, upload
        their wheels, tell the runner to go on.

        A dependency no index has is the package's problem: the runner goes on and pip
        fails the install, traced. The host failing to fetch (network, timeout) is ours:
        the runner is told to stop and the job is an ``infra_error``.
        """
        platform = str(image.manifest.get("platform") or self.config.guest_platform)
        target = GuestTarget(image.python_version, platform)
        requirements = requirements_from_guest(
            fields.get("requires_dist"), target.marker_environment(), prepared.project
        )
        answer: dict[str, Any] = {"proceed": True, "requirements": len(requirements)}
        try:
            async with asyncio.timeout(phase_timeout(ctx, "prepare")):
                wheels = await download_wheels(
                    requirements,
                    wheelhouse=prepared.wheelhouse,
                    cache_dir=self.config.work_dir / "cache",
                    python_version=image.python_version,
                    platform=platform,
                    pip=self.pip,
                )
            async with asyncio.timeout(phase_timeout(ctx, "upload")):
                if wheels:
                    await guest.put(wheels, GUEST_JOB_DIR, timeout=None)
            answer["wheels"] = len(wheels)
        except DependencyUnavailable as exc:
            if not exc.unsatisfiable:
                answer = {"proceed": False, "reason": f"dependencies: {exc}"[:1000]}
            else:
                answer["unavailable"] = exc.requirements[:50]
        except (PrepareError, TimeoutError) as exc:
            reason = str(exc) or "timed out"
            answer = {"proceed": False, "reason": f"dependencies: {reason}"[:1000]}
        if not answer["proceed"]:
            ctx.summary.error = ctx.summary.error or str(answer["reason"])
        ctx.log.info("guest_metadata", phase="install", stage="metadata",
                     requires=requirements[:100], answer=answer)  # fmt: skip
        await answer_metadata(ctx, guest, answer)

    async def _teardown(self, ctx: JobContext, vm: VM, guest: Guest) -> None:
        """Stop the VM; at once (no graceful quit) when the job is being cancelled."""
        task = asyncio.current_task()
        cancelling = task is not None and task.cancelling() > 0
        ctx.log.info("phase_started", phase="teardown")
        if not cancelling:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await guest.close()
        await vm.stop(grace=0.0 if cancelling else 2.0)
        ctx.log.info("phase_finished", phase="teardown", status="passed")

    async def _static_scan(
        self, ctx: JobContext, scan: asyncio.Task[list[Finding]], record: RunRecord
    ) -> None:
        """The host's static findings join the run's (logged after the guest's)."""
        try:
            findings = await scan
        except Exception as exc:  # a scanner bug must never fail the job
            ctx.summary.static_scan_error = f"{type(exc).__name__}: {exc}"[:500]
            return
        for finding in record.add_static(findings):
            fields = finding.to_dict()
            phase = str(fields.pop("phase"))
            level = "warning" if finding.severity in ("medium", "high") else "info"
            level = "error" if finding.severity == "critical" else level
            known = phase in ("install", "import", "tests")
            ctx.emit("finding", level=level, phase=phase if known else None,
                     fields={**fields, **({} if known else {"stage": phase})})  # fmt: skip

    async def _quality(
        self, ctx: JobContext, static: asyncio.Task[list[Indicator]], record: RunRecord
    ) -> None:
        try:
            indicators = await static
            report = build_report(indicators, runtime_indicators(record.quality_events))
        except Exception as exc:  # a quality bug must never fail the job
            ctx.summary.quality_error = f"{type(exc).__name__}: {exc}"[:500]
            return
        ctx.summary.quality = report.to_dict()
        ctx.log.info("quality_report", phase="quality", score=report.score)


def _static_findings(prepared: PreparedRelease) -> list[Finding]:
    """The static scan's findings and those of ``setup.py``'s undeclared imports."""
    sdist = prepared.sdist
    imports = undeclared_import_findings(sdist.name, prepared.build_imports) if sdist else []
    return [*imports, *static_findings(prepared.files)]


async def unless_disk_fails(vm: VM, work: Coroutine[Any, Any, object]) -> None:
    """``work``, stopped with :class:`VMError` if QEMU reports a failed write to the guest's
    disk: with the slave's work dir full QEMU pauses the guest, which would hang until the
    phase deadline and end ``timed_out`` as if the package had hung."""
    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(vm.disk_failed())
    try:
        done, _ = await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:  # cancelled: neither outlives the job
        task.cancel()
        watch.cancel()
        await asyncio.gather(task, watch, return_exceptions=True)
        raise
    if task in done:
        watch.cancel()
        await asyncio.gather(watch, return_exceptions=True)
        task.result()  # the work's own error, if any
        return
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    raise VMError(watch.result())


async def _note_vm_death(ctx: JobContext, vm: VM) -> None:
    """If the job failed because its VM died (QEMU killed, the guest panicked or powered
    off), say so first in ``summary.error`` and ``summary.vm_exit`` (the master quarantines
    a job whose VM dies on its last retry: it "kills its VM")."""
    task = asyncio.current_task()
    if ctx.summary.error is None or (task is not None and task.cancelling() > 0):
        return
    death = await vm.death()
    if death is None:
        return
    ctx.summary.vm_exit = death[:300]
    ctx.summary.error = f"the VM died: {death}; {ctx.summary.error}"[:2000]
    ctx.log.error("vm_died", exit=death)


async def _settle(booting: asyncio.Task[tuple[VM, Guest]]) -> tuple[VM, Guest] | None:
    """What a boot still in flight came to: cancelled if unfinished (it cleans up), else its VM.

    Its error, if any, is retrieved and dropped: the job already failed for another reason.
    """
    if not booting.done():
        booting.cancel()
        await asyncio.wait([booting])
    if booting.cancelled() or booting.exception() is not None:
        return None
    return booting.result()
