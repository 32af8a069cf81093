"""The pyti master daemon: feed watcher, job store, scheduler, slave server, HTTP API."""
