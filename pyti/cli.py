"""The ``pyti`` command: one entry point, one subcommand per job.

Each subcommand lives in its own module, which provides::

    def configure(parser: argparse.ArgumentParser) -> None   # add its flags
    def run(args: argparse.Namespace) -> int                  # do it, return an exit code

The modules are imported only when their subcommand runs, so ``pyti --help``
stays fast and a client command does not import QEMU or SQLite code.
A subcommand whose module has not been written yet says so and exits 2: it
never pretends to work. Loading by name is what lets master and slave stay
apart: this module is the only place that knows both.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import sys
import warnings
from collections.abc import Sequence
from types import ModuleType

# asyncssh names cryptography's DSA classes, which cryptography 51 deprecates on access:
# a dependency's own business, printed in every daemon's log otherwise. pyproject's
# pytest settings filter the same message.
warnings.filterwarnings("ignore", message="DSA is deprecated")

#: subcommand -> (module that implements it, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "master": ("master.daemon_cli", "run the master daemon (feed, queue, slave server, HTTP API)"),
    "slave": ("slave.cli", "run a slave daemon that tests jobs in fresh QEMU VMs"),
    "image": ("slave.image_builder.cli", "build, list and verify guest images"),
    "submit": ("master.client.submit", "queue a test of a PyPI release or a local sdist/wheel"),
    "jobs": ("master.client.jobs", "list jobs"),
    "project": ("master.client.project", "a project's tested releases, newest first"),
    "job": ("master.client.job", "show one job: phases, outcome, findings"),
    "tail": ("master.client.tail", "follow a job's live log; exit code reflects the outcome"),
    "slaves": ("master.client.slaves", "list connected slaves"),
}

EXIT_NOT_AVAILABLE = 2
#: The distribution's name ("pyti" on PyPI is an unrelated project); the command is ``pyti``.
DISTRIBUTION = "pyti-infra"


def version() -> str:
    """The installed distribution's version ("unknown" when run from an uninstalled tree)."""
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _load(module_name: str) -> ModuleType | None:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # Only "this subcommand's own module is missing" means not available;
        # a missing dependency inside it is a real error and must surface.
        if exc.name is not None and module_name.startswith(exc.name):
            return None
        raise


def build_parser(load: str | None = None) -> argparse.ArgumentParser:
    """The parser; the subcommand named by ``load`` (only) adds its own flags."""
    parser = argparse.ArgumentParser(
        prog="pyti",
        description="pyti: test every new PyPI release in a throw-away VM with no network.",
    )
    parser.add_argument("--version", action="version", version=f"pyti {version()} ({DISTRIBUTION})")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        sp.set_defaults(_module=module_name)
        module = _load(module_name) if name == load else None
        if module is not None:
            module.configure(sp)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pyti`` console script."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    # Load only the chosen subcommand's module (and none for bare --help).
    chosen = next((a for a in args_list if not a.startswith("-")), None)
    parser = build_parser(load=chosen if chosen in SUBCOMMANDS else None)
    args, unknown = parser.parse_known_args(args_list)
    module = _load(args._module)
    if module is None:
        print(f"pyti {args.command}: not yet available in this version", file=sys.stderr)
        return EXIT_NOT_AVAILABLE
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    result: int = module.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
