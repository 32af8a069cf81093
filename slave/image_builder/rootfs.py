"""Build steps that make the guest's root filesystem in a host directory.

Everything runs as root on the host, but only debootstrap, chroot, mke2fs and
qemu-img are used: no loop mounts, nothing mounted into the tree, so an
interrupted build leaves nothing behind but files.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import secrets
import shutil
import string
import sys
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from guest_runner.bundle import build_pyz
from slave.image_builder.errors import BuildError
from slave.image_builder.progress import Progress, run_tool
from slave.image_builder.recipe import Recipe
from slave.image_builder.resources import GUEST_FILES_DIR, RUNNER_DIR

TESTER_UID = 1000


async def debootstrap(recipe: Recipe, root: Path, mirror: str, progress: Progress) -> None:
    """``debootstrap --variant=minbase`` of the recipe's packages from ``mirror`` into ``root``."""
    if os.geteuid() != 0:
        raise BuildError(recipe.name, "debootstrap", "building an image needs root")
    if shutil.which("debootstrap") is None:
        raise BuildError(recipe.name, "debootstrap", "debootstrap is not installed")
    argv: list[str | Path] = ["debootstrap", "--variant=minbase"]
    if recipe.packages:
        argv.append("--include=" + ",".join(recipe.packages))
    argv += [recipe.suite, root, mirror]

    # debootstrap retrieves every package first, then validates, extracts,
    # unpacks and configures them: the retrieved count is the bar's total.
    counts: dict[str, int] = {}

    def show(line: str) -> None:
        if not line.startswith(("I:", "W:")):
            return
        words = line[3:].split()
        verb = words[0] if words else ""
        total = counts.get("Retrieving", 0)
        if len(words) >= 2 and verb in ("Retrieving", "Validating", "Extracting", "Unpacking",
                                        "Configuring"):  # fmt: skip
            counts[verb] = counts.get(verb, 0) + 1
            if verb != "Retrieving" and total:
                progress.bar(min(counts[verb], total), total, f"{verb} {words[1]}")
                return
        progress.status(line[3:])

    await run_tool(recipe.name, "debootstrap", argv, on_line=show)


def install_guest_files(root: Path) -> None:
    """Copy ``guest_image/files/`` (used by setup.sh) into the tree; build the runner's zipapp."""
    opt = root / "opt" / "pyti"
    shutil.rmtree(opt / "guest", ignore_errors=True)
    shutil.copytree(GUEST_FILES_DIR, opt / "guest", ignore=shutil.ignore_patterns("__pycache__"))
    build_pyz(opt / "runner.pyz", RUNNER_DIR)


async def download_wheels(recipe: Recipe, reqs: tuple[str, ...], dest: Path, step: str) -> None:
    """``pip download`` binary wheels for the guest's Python (never builds anything)."""
    await asyncio.to_thread(dest.mkdir, parents=True, exist_ok=True)
    if not reqs:
        return
    argv: list[str | Path] = [sys.executable, "-m", "pip", "download", "--quiet"]
    argv += ["--only-binary=:all:", "--python-version", recipe.python_version, "-d", dest]
    await run_tool(recipe.name, step, [*argv, *reqs])


async def chroot_setup(recipe: Recipe, root: Path, progress: Progress) -> None:
    """Run ``guest_image/files/setup.sh`` inside the tree."""
    await run_tool(
        recipe.name,
        "configure",
        ["chroot", root, "/bin/sh", "/opt/pyti/guest/setup.sh", str(recipe.vm.tester_max_procs)],
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        on_line=progress.status,
    )


async def install_venv_tools(recipe: Recipe, root: Path, wheels: Path) -> None:
    """Make the venv ``/opt/pyti/tools`` in the guest from wheels fetched on the host."""
    inside = "/" + str(wheels.relative_to(root))
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PIP_CONFIG_FILE": "/dev/null"}
    await run_tool(
        recipe.name, "tools", ["chroot", root, "python3", "-m", "venv", "/opt/pyti/tools"], env=env
    )
    if recipe.venv_tools:
        pip: list[str | Path] = ["chroot", root, "/opt/pyti/tools/bin/pip", "install", "-q"]
        pip.append("--no-index")
        await run_tool(
            recipe.name, "tools", [*pip, "--find-links", inside, *recipe.venv_tools], env=env
        )
    shutil.rmtree(wheels)


#: The job venv, made once in the image with the test tools installed. Every job
#: starts from the pristine snapshot disk, so it is as fresh as one made per job,
#: without paying ensurepip + a pip install of pytest (≈ 100 s under TCG) each time.
JOB_VENV = "/home/tester/venv"
#: Marks JOB_VENV as the image's pristine template (the runner reuses it as is).
JOB_VENV_MARKER = ".pyti-template"


async def install_job_venv(recipe: Recipe, root: Path) -> None:
    """Make ``JOB_VENV`` with the recipe's test tools (``/opt/pyti/wheels``), owned by tester."""
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PIP_CONFIG_FILE": "/dev/null"}
    await run_tool(
        recipe.name, "job venv", ["chroot", root, "python3", "-m", "venv", JOB_VENV], env=env
    )
    if recipe.wheels:
        pip: list[str | Path] = [
            "chroot",
            root,
            f"{JOB_VENV}/bin/pip",
            "install",
            "-q",
            "--no-index",
        ]
        await run_tool(
            recipe.name,
            "job venv",
            [*pip, "--find-links", "/opt/pyti/wheels", *recipe.wheels],
            env=env,
        )
    (root / JOB_VENV.lstrip("/") / JOB_VENV_MARKER).write_text(f"{recipe.name}\n")
    await run_tool(
        recipe.name, "job venv", ["chroot", root, "chown", "-R", "tester:tester", JOB_VENV], env=env
    )


#: The prepared build environments (guest_runner.prepared_build), one folder each.
BUILD_ENVS = "/opt/pyti/build-envs"
#: What every prepared environment holds besides its own distributions: the runner's
#: check of the build requirements (guest_runner/build_hooks.py) uses it.
BUILD_ENV_BASE = ("packaging",)


def build_env_names(entry: str) -> list[str]:
    """The requirements of one ``build_envs`` entry, with :data:`BUILD_ENV_BASE`."""
    reqs = entry.split()
    names = {canonicalize_name(Requirement(r).name) for r in reqs}
    return [*reqs, *(n for n in BUILD_ENV_BASE if n not in names)]


_SPEC_WORDS = {"<": "lt", ">": "gt", "=": "eq", "!": "ne", "~": "c", ",": "_"}


def build_env_folder(entry: str) -> str:
    """The folder name of one ``build_envs`` entry: its requirements joined by ``+``,
    names canonical, specifiers spelled out (``flit-core<4`` → ``flit-core-lt4``)."""
    parts = []
    for text in entry.split():
        req = Requirement(text)
        spec = "".join(_SPEC_WORDS.get(c, c) for c in str(req.specifier))
        parts.append(canonicalize_name(req.name) + (f"-{spec}" if spec else ""))
    return "+".join(parts)


async def install_build_envs(recipe: Recipe, root: Path, wheels: Path) -> None:
    """Install each of the recipe's ``build_envs`` into its own folder under
    :data:`BUILD_ENVS` (the tools venv's pip, ``--target``, from wheels fetched on the
    host), byte-compiled (the build runs as tester, who cannot write there), with
    ``pyti-env.json`` naming what it provides."""
    inside = "/" + str(wheels.relative_to(root))
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PIP_CONFIG_FILE": "/dev/null"}
    for order, entry in enumerate(recipe.build_envs):
        target = f"{BUILD_ENVS}/{build_env_folder(entry)}"
        pip: list[str | Path] = ["chroot", root, "/opt/pyti/tools/bin/pip", "install", "-q"]
        pip += ["--no-index", "--no-compile", "--target", target, "--find-links", inside]
        await run_tool(recipe.name, "build envs", [*pip, *build_env_names(entry)], env=env)
        compile_: list[str | Path] = ["chroot", root, "python3", "-m", "compileall", "-q"]
        await run_tool(recipe.name, "build envs", [*compile_, target], env=env)
        provides = sorted(
            canonicalize_name(p.name.split("-", 1)[0])
            for p in (root / target.lstrip("/")).glob("*.dist-info")
        )
        (root / target.lstrip("/") / "pyti-env.json").write_text(
            json.dumps({"entry": entry, "order": order, "provides": provides}) + "\n"
        )
    shutil.rmtree(wheels)


async def make_keys(recipe: Recipe, root: Path, out_dir: Path) -> None:
    """A fresh guest host key and a client key for root; the private one stays beside the image."""
    etc_ssh = root / "etc" / "ssh"
    for old in etc_ssh.glob("ssh_host_*"):
        old.unlink()
    host_key = etc_ssh / "ssh_host_ed25519_key"
    client_key = out_dir / "id_ed25519"
    for key, comment in ((host_key, "pyti-guest"), (client_key, f"pyti-{recipe.name}")):
        await run_tool(
            recipe.name,
            "keys",
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", key],
        )
    client_key.chmod(0o600)
    shutil.copyfile(host_key.with_suffix(".pub"), out_dir / "ssh_host_ed25519_key.pub")
    root_ssh = root / "root" / ".ssh"
    root_ssh.mkdir(mode=0o700, exist_ok=True)
    auth = root_ssh / "authorized_keys"
    shutil.copyfile(client_key.with_suffix(".pub"), auth)
    auth.chmod(0o600)


def _random_id(alphabet: str, n: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


@dataclass(frozen=True, slots=True)
class Bait:
    """Credentials planted for user tester; reading them is a finding."""

    ssh_private_key: str
    aws_access_key_id: str
    aws_secret_access_key: str
    token: str

    def to_json(self) -> dict[str, str]:
        """The manifest's ``bait`` section."""
        return {
            "ssh_key_path": "/home/tester/.ssh/id_rsa",
            "ssh_key_sha256": hashlib.sha256(self.ssh_private_key.encode()).hexdigest(),
            "aws_credentials_path": "/home/tester/.aws/credentials",
            "aws_access_key_id": self.aws_access_key_id,
            "aws_secret_access_key": self.aws_secret_access_key,
            "token_env": "PYTI_BAIT_TOKEN",
            "token": self.token,
        }


async def plant_bait(recipe: Recipe, root: Path, scratch: Path) -> Bait:
    """Random bait credentials in tester's home and environment."""
    key = scratch / "bait_id_rsa"
    key.unlink(missing_ok=True)
    await run_tool(
        recipe.name,
        "bait",
        ["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-C", "deploy@prod", "-f", key],
    )
    upper = string.ascii_uppercase + string.digits
    bait = Bait(
        ssh_private_key=key.read_text(),
        aws_access_key_id="AKIA" + _random_id(upper, 16),
        aws_secret_access_key=_random_id(string.ascii_letters + string.digits + "+/", 40),
        token="pyti_bait_" + secrets.token_hex(20),
    )
    key.unlink()
    key.with_suffix(".pub").unlink()
    home = root / "home" / "tester"
    files = {
        ".ssh/id_rsa": bait.ssh_private_key,
        ".aws/credentials": (
            "[default]\n"
            f"aws_access_key_id = {bait.aws_access_key_id}\n"
            f"aws_secret_access_key = {bait.aws_secret_access_key}\n"
        ),
    }
    for rel, text in files.items():
        path = home / rel
        path.parent.mkdir(mode=0o700, exist_ok=True)
        path.write_text(text)
        path.chmod(0o600)
        for p in (path, path.parent):
            os.chown(p, TESTER_UID, TESTER_UID)
    with (home / ".profile").open("a") as f:
        f.write(f"export PYTI_BAIT_TOKEN={bait.token}\n")
    with (root / "etc" / "environment").open("a") as f:
        f.write(f"PYTI_BAIT_TOKEN={bait.token}\n")
    return bait


async def guest_versions(recipe: Recipe, root: Path) -> tuple[str, str]:
    """(Python version, kernel version) of the tree; the Python must match the recipe."""
    out = await run_tool(
        recipe.name,
        "versions",
        ["chroot", root, "python3", "-c", "import platform; print(platform.python_version())"],
    )
    python = out.strip().splitlines()[-1]
    if not python.startswith(recipe.python_version + "."):
        wanted = recipe.python_version
        raise BuildError(recipe.name, "versions", f"guest python is {python}, recipe says {wanted}")
    kernels = sorted(p.name for p in (root / "lib" / "modules").iterdir())
    if len(kernels) != 1:
        raise BuildError(recipe.name, "versions", f"expected one kernel, found {kernels}")
    return python, kernels[0]


def extract_boot_files(recipe: Recipe, root: Path, kernel: str, out_dir: Path) -> None:
    """Kernel and initrd for direct boot; they stay in the disk too (harmless)."""
    for src, dst in ((f"vmlinuz-{kernel}", "vmlinuz"), (f"initrd.img-{kernel}", "initrd.img")):
        path = root / "boot" / src
        if not path.is_file():
            raise BuildError(recipe.name, "boot-files", f"{path} is missing")
        shutil.copyfile(path, out_dir / dst)


async def make_disk(recipe: Recipe, root: Path, scratch: Path, out_dir: Path) -> None:
    """ext4 filled from the tree by ``mke2fs -d`` (no mount), then converted to qcow2."""
    raw = scratch / "disk.raw"
    raw.unlink(missing_ok=True)
    size = f"{recipe.vm.disk_gib}G"
    await run_tool(
        recipe.name,
        "disk",
        ["mke2fs", "-q", "-F", "-t", "ext4", "-L", "pyti-root", "-d", root, raw, size],
    )
    await run_tool(
        recipe.name, "disk", ["qemu-img", "convert", "-O", "qcow2", raw, out_dir / "disk.qcow2"]
    )
    raw.unlink()
