"""The one object every component of the master shares."""

from __future__ import annotations

from dataclasses import dataclass

from master.bus import EventBus
from master.config import MasterConfig
from master.images import ImageCatalogue
from master.metrics import Metrics
from master.scheduler import Scheduler
from master.slaves.registry import SlaveRegistry
from master.store import Store


@dataclass
class MasterContext:
    """Shared state of one master daemon (see ``docs/contracts.md``, "Master internals")."""

    config: MasterConfig
    store: Store
    bus: EventBus
    slaves: SlaveRegistry
    scheduler: Scheduler
    metrics: Metrics
    #: The images known here and their Python (config, then what slaves advertised).
    images: ImageCatalogue

    @classmethod
    async def open(cls, config: MasterConfig, *, metrics: Metrics | None = None) -> MasterContext:
        """Open the store and build the rest; ``close()`` always. Raises ``StoreError``."""
        store = await Store.open(
            config.db_path,
            retry_limit=config.retry_limit,
            quarantine_after=config.quarantine_after,
        )
        metrics = metrics or Metrics()
        bus = EventBus()
        slaves = SlaveRegistry()
        scheduler = Scheduler(
            store,
            slaves,
            bus,
            metrics,
            reconnect_grace=config.reconnect_grace,
            watchdog_interval=config.heartbeat_interval,
        )
        images = ImageCatalogue(config.images, config.default_image)
        try:
            for capabilities in await store.slaves.advertised():
                images.learn_capabilities(capabilities)
        except BaseException:
            await store.close()
            raise
        ctx = cls(config, store, bus, slaves, scheduler, metrics, images)
        metrics.add_collector(ctx._collect)
        return ctx

    async def _collect(self) -> None:
        counts = await self.store.jobs.counts()
        jobs = self.metrics.gauge("jobs", "Jobs by state.", ["state"])
        for state, n in counts["state"].items():
            jobs.set(n, state)
        self.metrics.gauge("slaves_connected", "Connected slaves.").set(len(self.slaves))
        free = sum(link.free_slots for link in self.slaves)
        self.metrics.gauge("slave_slots_free", "Free slots over all slaves.").set(free)

    async def close(self) -> None:
        """Close the store (queued event batches are stored first)."""
        await self.store.close()
