"""Completion callbacks: POST a finished job's summary to the ``callback_url`` it came with.

The store persists every pending callback (written in the same transaction that
finishes the job), so a master restart loses none: this sender only delivers
what ``store.callbacks.due(now)`` returns, and records each outcome
(``callback_done`` / ``callback_failed`` with the next try time) before moving on.

Delivery: a JSON body, signed with HMAC-SHA256 keyed by the configured secret::

    X-Pyti-Signature: sha256=<hex of HMAC-SHA256(secret, body)>
    X-Pyti-Event: job_finished
    X-Pyti-Delivery: <callback id>   (the same on every retry: receivers can dedupe)

A 2xx answer is success; anything else (3xx included: redirects are not followed,
so a signed body never lands somewhere unintended), a timeout or a connection
error is retried with exponential backoff and jitter, up to ``MAX_ATTEMPTS``.
A target that ``master.http.callback_guard`` refuses (a loopback, private,
link-local … address not in ``[http] callback_allow``) is not retried: the
callback is abandoned at once, logged as ``callback_refused`` and counted as
``callbacks_total{result="refused"}``.
The sender wakes when a job ends (bus) or when the next retry it scheduled is due,
and otherwise rescans the store every ``IDLE_RESCAN_S`` (for retries scheduled by
an earlier run of the master).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
import time
from collections.abc import Sequence

import aiohttp
import structlog

from master.bus import EventBus, Lagged
from master.http.callback_guard import CallbackPolicy, CallbackRefused, refusal
from master.jobs import Callback
from master.metrics import Metrics
from master.store import Store

log = structlog.get_logger("pyti.master.callbacks")

DELIVERY_TIMEOUT_S = 10.0
MAX_ATTEMPTS = 12
BACKOFF_BASE_S = 5.0
BACKOFF_MAX_S = 3600.0
IDLE_RESCAN_S = 30.0
#: Deliveries in flight at once; a slow receiver must not hold up the others for long.
CONCURRENCY = 8
#: After a store error, wait this long before trying again (the store may be closing).
ERROR_PAUSE_S = 5.0
SIGNATURE_HEADER = "X-Pyti-Signature"


def sign(secret: bytes, body: bytes) -> str:
    """The signature header value for ``body``: ``sha256=<hex>``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(secret: bytes, body: bytes, header: str) -> bool:
    """What a receiver does: constant-time check of the signature header."""
    return hmac.compare_digest(sign(secret, body), header)


def backoff(attempts: int, base: float = BACKOFF_BASE_S) -> float:
    """Seconds before the next try after ``attempts`` failures (with ±20 % jitter)."""
    delay = min(base * 2.0 ** max(attempts - 1, 0), BACKOFF_MAX_S)
    return delay * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not a secret


def body_of(callback: Callback) -> bytes:
    """The exact bytes that are signed and sent."""
    return json.dumps(callback.payload, sort_keys=True, separators=(",", ":")).encode("utf-8")


class CallbackSender:
    """Delivers due callbacks until cancelled. Owned by the app's ``cleanup_ctx``."""

    def __init__(
        self,
        store: Store,
        bus: EventBus,
        secret: bytes,
        metrics: Metrics,
        session: aiohttp.ClientSession,
        *,
        backoff_base: float = BACKOFF_BASE_S,
        policy: CallbackPolicy | None = None,
    ) -> None:
        """``backoff_base``: seconds before the first retry (doubling up to the cap).

        ``policy`` judges IP literals in URLs (default: public addresses only); names are
        judged by ``session``'s resolver, which must be a ``callback_guard.callback_session``.
        """
        self._store = store
        self._policy = policy or CallbackPolicy()
        self._backoff_base = backoff_base
        self._bus = bus
        self._secret = secret
        self._session = session
        self._next_due: float | None = None
        self._results = metrics.counter(
            "callbacks_total", "Completion callback deliveries by result", ["result"]
        )

    def __repr__(self) -> str:
        return f"<CallbackSender next_due={self._next_due}>"

    async def deliver(self, callback: Callback) -> str:
        """One POST: ``"delivered"`` (a 2xx), ``"failed"`` (worth a retry) or ``"refused"``
        (the policy forbids the target). Never raises except ``CancelledError``."""
        try:
            self._policy.check_url(callback.url)
        except CallbackRefused as exc:
            return self._refused(callback, exc)
        body = body_of(callback)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "pyti-master",
            SIGNATURE_HEADER: sign(self._secret, body),
            "X-Pyti-Event": "job_finished",
            "X-Pyti-Delivery": str(callback.id),
        }
        try:
            async with (
                asyncio.timeout(DELIVERY_TIMEOUT_S),
                self._session.post(
                    callback.url, data=body, headers=headers, allow_redirects=False
                ) as response,
            ):
                # Drain a little so the connection can be reused; the content is not ours.
                await response.content.read(4096)
                ok = 200 <= response.status < 300
                reason = f"status {response.status}"
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
            if (refused := refusal(exc)) is not None:
                return self._refused(callback, refused)
            ok, reason = False, f"{type(exc).__name__}: {exc}"
        if not ok:
            log.info("callback_failed", callback=callback.id, job=callback.job_id, reason=reason)
        return "delivered" if ok else "failed"

    def _refused(self, callback: Callback, exc: CallbackRefused) -> str:
        log.warning(
            "callback_refused", callback=callback.id, job=callback.job_id, reason=exc.reason
        )
        return "refused"

    async def _settle(self, callback: Callback) -> None:
        result = await self.deliver(callback)
        if result == "refused":
            await self._store.callbacks.done(callback.id)
            self._results.inc(1, "refused")
            return
        if result == "delivered":
            await self._store.callbacks.done(callback.id)
            self._results.inc(1, "delivered")
            log.info("callback_delivered", callback=callback.id, job=callback.job_id)
            return
        attempts = callback.attempts + 1
        if attempts >= MAX_ATTEMPTS:
            await self._store.callbacks.done(callback.id)
            self._results.inc(1, "abandoned")
            log.warning("callback_abandoned", callback=callback.id, job=callback.job_id)
            return
        next_at = time.time() + backoff(attempts, self._backoff_base)
        await self._store.callbacks.failed(callback.id, next_at)
        self._results.inc(1, "failed")
        self._next_due = next_at if self._next_due is None else min(self._next_due, next_at)

    async def deliver_due(self) -> int:
        """Deliver every callback due now; returns how many were tried.

        Each outcome is recorded in the store before this returns; on cancellation
        the ones in flight stay pending in the store and are tried again later.
        """
        due: Sequence[Callback] = await self._store.callbacks.due(time.time())
        if not due:
            return 0
        limit = asyncio.Semaphore(CONCURRENCY)

        async def one(callback: Callback) -> None:
            async with limit:
                await self._settle(callback)

        async with asyncio.TaskGroup() as group:
            for callback in due:
                group.create_task(one(callback))
        return len(due)

    def _wait_s(self) -> float:
        now = time.time()
        if self._next_due is not None and self._next_due <= now + IDLE_RESCAN_S:
            return max(self._next_due - now, 0.0)
        return IDLE_RESCAN_S

    async def run(self) -> None:
        """Deliver forever: after each job end, at each scheduled retry, and every rescan period.

        Store errors are logged and retried after a pause; cancellation stops it
        (deliveries in flight are abandoned and stay pending in the store).
        """
        with self._bus.subscribe_ends() as ends:
            while True:
                if self._next_due is not None and self._next_due <= time.time():
                    self._next_due = None
                try:
                    while await self.deliver_due():
                        pass
                except Exception:  # a store hiccup must not end deliveries for good
                    log.exception("callback_scan_failed")
                    await asyncio.sleep(ERROR_PAUSE_S)
                    continue
                try:
                    async with asyncio.timeout(self._wait_s()):
                        await ends.get()
                except (TimeoutError, Lagged):
                    pass
