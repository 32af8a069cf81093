"""SafeArchive reads hostile wheels and tarballs as data and refuses what is unsafe."""

from __future__ import annotations

import contextlib
import io
import stat
import struct
import tarfile
import tempfile
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slave.archive import (
    ArchiveError,
    ArchiveLimits,
    CorruptArchive,
    DuplicateMember,
    LimitExceeded,
    MemberKind,
    MemberNotFound,
    SafeArchive,
    UnsafeLink,
    UnsafeMember,
    UnsupportedArchive,
)
from slave.errors import SlaveError
from tests.fakes.dists import build_sdist, build_wheel

MiB = 1 << 20

# (name, type, data or link target)
TarEntry = tuple[str, bytes, bytes | str]


def make_tar(path: Path, entries: Sequence[TarEntry], mode: str = "w:gz") -> Path:
    """A tarball with exactly these entries, hostile names included."""
    with tarfile.open(path, mode, format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
        for name, kind, payload in entries:
            info = tarfile.TarInfo(name)
            info.type = kind
            if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                assert isinstance(payload, str)
                info.linkname = payload
                tar.addfile(info)
            else:
                data = payload.encode() if isinstance(payload, str) else payload
                info.size = len(data) if kind == tarfile.REGTYPE else 0
                tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    return path


def make_zip(
    path: Path, entries: Sequence[tuple[str, bytes]], *, symlinks: Sequence[str] = ()
) -> Path:
    """A zip with exactly these entries; names in ``symlinks`` get a unix S_IFLNK mode."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns on duplicate names, which we want
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in entries:
                info = zipfile.ZipInfo(name)
                info.compress_type = zipfile.ZIP_DEFLATED
                if name in symlinks:
                    info.create_system = 3
                    info.external_attr = (stat.S_IFLNK | 0o777) << 16
                zf.writestr(info, data)
    return path


def test_reads_wheel_and_sdist_built_by_fakes(tmp_path: Path) -> None:
    """Members of an ordinary wheel and sdist are listed and readable."""
    whl = build_wheel(tmp_path, "demo", "1.0", {"demo/__init__.py": "X = 1\n"})
    sd = build_sdist(tmp_path, "demo", "1.0", {"demo/__init__.py": "X = 1\n"})
    with SafeArchive.open(whl) as ar:
        assert ar.read("demo/__init__.py") == b"X = 1\n"
        assert "demo-1.0.dist-info/METADATA" in {m.name for m in ar.members()}
    with SafeArchive.open(sd) as ar:
        assert ar.read("demo-1.0/PKG-INFO").startswith(b"Metadata-Version: 2.1")
        member = ar.member("demo-1.0/demo")
        assert member is not None and member.is_dir


@pytest.mark.parametrize(
    ("suffix", "mode"),
    [("tar.gz", "w:gz"), ("tgz", "w:gz"), ("tar.bz2", "w:bz2"), ("tar.xz", "w:xz"), ("tar", "w")],
)
def test_every_tar_flavour_is_read(tmp_path: Path, suffix: str, mode: str) -> None:
    """Each supported tarball compression is recognised by suffix and read."""
    path = make_tar(tmp_path / f"a.{suffix}", [("p/a.txt", tarfile.REGTYPE, b"hello")], mode)
    with SafeArchive.open(path) as ar:
        assert ar.read("p/a.txt") == b"hello"
        assert [m.kind for m in ar.members()] == [MemberKind.FILE]


def test_dot_components_are_normalised(tmp_path: Path) -> None:
    """'./a//b' is listed and read as 'a/b'."""
    path = make_tar(tmp_path / "a.tar.gz", [("./a//b", tarfile.REGTYPE, b"x")])
    with SafeArchive.open(path) as ar:
        assert [m.name for m in ar.members()] == ["a/b"]


HOSTILE_NAMES = [
    ("../evil.py", "parent directory"),
    ("pkg/../../evil.py", "parent directory"),
    ("/etc/cron.d/evil", "absolute"),
    ("C:/Windows/evil.dll", "drive letter"),
    ("c:evil", "drive letter"),
    ("pkg\\..\\..\\evil", "backslash"),
    ("pkg/evil\nname", "control"),
    (".", "root"),
]


@pytest.mark.parametrize(("name", "reason"), HOSTILE_NAMES)
def test_hostile_names_in_tar_are_refused(tmp_path: Path, name: str, reason: str) -> None:
    """Traversal, absolute, drive-letter, backslash and control-character names fail."""
    path = make_tar(
        tmp_path / "a.tar.gz", [("ok", tarfile.REGTYPE, b""), (name, tarfile.REGTYPE, b"x")]
    )
    with pytest.raises(UnsafeMember) as err:
        SafeArchive.open(path)
    assert reason in err.value.reason
    assert isinstance(err.value, SlaveError)


@pytest.mark.parametrize(("name", "reason"), HOSTILE_NAMES[:-1])
def test_hostile_names_in_zip_are_refused(tmp_path: Path, name: str, reason: str) -> None:
    """The same hostile names are refused inside a wheel."""
    path = make_zip(tmp_path / "a.whl", [(name, b"x")])
    with pytest.raises(UnsafeMember) as err:
        SafeArchive.open(path)
    assert reason in err.value.reason


def test_links_inside_tree_are_recorded_never_read(tmp_path: Path) -> None:
    """In-tree symlinks and hardlinks are listed with their targets; read() refuses them."""
    path = make_tar(
        tmp_path / "a.tar.gz",
        [
            ("p/real.txt", tarfile.REGTYPE, b"data"),
            ("p/sym", tarfile.SYMTYPE, "real.txt"),
            ("p/hard", tarfile.LNKTYPE, "p/real.txt"),
        ],
    )
    with SafeArchive.open(path) as ar:
        sym, hard = ar.member("p/sym"), ar.member("p/hard")
        assert sym is not None and sym.is_symlink and sym.link_target == "real.txt"
        assert hard is not None and hard.is_hardlink and hard.link_target == "p/real.txt"
        with pytest.raises(MemberNotFound):
            ar.read("p/sym")
        with pytest.raises(MemberNotFound):
            ar.read("p/hard")


@pytest.mark.parametrize(
    ("kind", "target"),
    [
        (tarfile.SYMTYPE, "../../etc/passwd"),
        (tarfile.SYMTYPE, "/etc/passwd"),
        (tarfile.LNKTYPE, "../outside"),
        (tarfile.LNKTYPE, "/etc/shadow"),
    ],
)
def test_tar_links_out_of_tree_are_refused(tmp_path: Path, kind: bytes, target: str) -> None:
    """A symlink or hardlink whose target leaves the tree raises UnsafeLink."""
    path = make_tar(tmp_path / "a.tar.gz", [("p/link", kind, target)])
    with pytest.raises(UnsafeLink) as err:
        SafeArchive.open(path)
    assert err.value.target == target


def test_zip_symlinks_are_recognised(tmp_path: Path) -> None:
    """A zip entry with a unix S_IFLNK mode is a symlink; out of tree it is refused."""
    ok = make_zip(tmp_path / "ok.zip", [("p/a", b"x"), ("p/l", b"a")], symlinks=["p/l"])
    with SafeArchive.open(ok) as ar:
        link = ar.member("p/l")
        assert link is not None and link.is_symlink and link.link_target == "a"
    bad = make_zip(tmp_path / "bad.zip", [("p/l", b"../../.ssh/id_rsa")], symlinks=["p/l"])
    with pytest.raises(UnsafeLink):
        SafeArchive.open(bad)


def test_duplicate_names_are_refused(tmp_path: Path) -> None:
    """Two entries with one normalised name (readers disagree on the winner) fail."""
    zpath = make_zip(tmp_path / "a.whl", [("p/a.py", b"1"), ("p/a.py", b"2")])
    with pytest.raises(DuplicateMember):
        SafeArchive.open(zpath)
    tpath = make_tar(
        tmp_path / "a.tar.gz",
        [("p/a.py", tarfile.REGTYPE, b"1"), ("./p/a.py", tarfile.REGTYPE, b"2")],
    )
    with pytest.raises(DuplicateMember):
        SafeArchive.open(tpath)


def test_zip_bomb_ratio_is_refused(tmp_path: Path) -> None:
    """A member that inflates more than max_ratio times is refused."""
    path = make_zip(tmp_path / "bomb.zip", [("zeros", b"\0" * (4 * MiB))])
    with pytest.raises(LimitExceeded) as err:
        SafeArchive.open(path)
    assert err.value.limit == "max_ratio"


def test_zip_member_count_is_capped_before_parsing(tmp_path: Path) -> None:
    """More entries than max_members fail from the end record, before zipfile parses them."""
    path = make_zip(tmp_path / "many.zip", [(f"f{i}", b"") for i in range(50)])
    with pytest.raises(LimitExceeded) as err:
        SafeArchive.open(path, ArchiveLimits(max_members=10))
    assert err.value.limit == "max_members" and err.value.actual == 50
    with pytest.raises(LimitExceeded) as err:
        SafeArchive.open(path, ArchiveLimits(max_directory_bytes=100))
    assert err.value.limit == "max_directory_bytes"


def _central_entries(data: bytes) -> list[int]:
    positions, start = [], 0
    while (pos := data.find(b"PK\x01\x02", start)) >= 0:
        positions.append(pos)
        start = pos + 4
    return positions


def test_overlapping_zip_members_are_refused(tmp_path: Path) -> None:
    """Central-directory entries sharing local data (the overlap bomb) fail."""
    path = make_zip(tmp_path / "o.zip", [("a", b"aaaa"), ("b", b"bbbb")])
    data = bytearray(path.read_bytes())
    second = _central_entries(bytes(data))[1]
    struct.pack_into("<L", data, second + 42, 0)  # "b" now starts where "a" does
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptArchive) as err:
        SafeArchive.open(path)
    assert "overlap" in err.value.reason


def test_lying_zip_size_is_caught_while_reading(tmp_path: Path) -> None:
    """A member declaring fewer bytes than its data holds is never read past the lie."""
    path = make_zip(tmp_path / "l.zip", [("a", b"A" * 5000)])
    data = bytearray(path.read_bytes())
    central = _central_entries(bytes(data))[0]
    struct.pack_into("<L", data, central + 24, 10)  # uncompressed size: 10
    struct.pack_into("<L", data, 22, 10)  # same in the local header
    path.write_bytes(bytes(data))
    with SafeArchive.open(path) as ar, pytest.raises(CorruptArchive):
        ar.read("a")


def test_read_stops_at_max_bytes(tmp_path: Path) -> None:
    """read() refuses a member bigger than the caller's max_bytes."""
    path = make_zip(tmp_path / "a.zip", [("big", bytes(range(256)) * 100)])
    with SafeArchive.open(path) as ar:
        with pytest.raises(LimitExceeded) as err:
            ar.read("big", max_bytes=1000)
        assert err.value.limit == "read_max_bytes"
        assert len(ar.read("big", max_bytes=25600)) == 25600


def test_tar_bomb_is_stopped_by_the_decompressed_stream(tmp_path: Path) -> None:
    """A gzip tarball that inflates past max_ratio fails while scanning, on real bytes."""
    path = make_tar(tmp_path / "bomb.tar.gz", [("zeros", tarfile.REGTYPE, b"\0" * (3 * MiB))])
    with pytest.raises(LimitExceeded) as err:
        SafeArchive.open(path)
    assert err.value.limit == "max_ratio"


def test_tar_total_size_is_capped(tmp_path: Path) -> None:
    """Members adding up to more than max_total_size fail."""
    entries = [(f"f{i}", tarfile.REGTYPE, bytes(range(256)) * 400) for i in range(4)]
    path = make_tar(tmp_path / "t.tar", entries, "w")
    with pytest.raises(LimitExceeded) as err:
        SafeArchive.open(path, ArchiveLimits(max_total_size=300_000))
    assert err.value.limit == "max_total_size"


def test_tar_member_count_is_capped(tmp_path: Path) -> None:
    """More tar entries than max_members fail."""
    path = make_tar(tmp_path / "t.tar.gz", [(f"f{i}", tarfile.REGTYPE, b"") for i in range(20)])
    with pytest.raises(LimitExceeded) as err:
        SafeArchive.open(path, ArchiveLimits(max_members=5))
    assert err.value.limit == "max_members"


def test_huge_pax_header_is_refused(tmp_path: Path) -> None:
    """A pax header bigger than max_header_bytes is not read into memory."""
    path = tmp_path / "pax.tar"
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("a")
        info.pax_headers = {"comment": "x" * (2 * MiB)}
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(LimitExceeded) as err:
        SafeArchive.open(path)
    assert err.value.limit == "max_header_bytes"


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("empty.whl", b""),
        ("garbage.whl", b"PK\x03\x04" + b"\xff" * 200),
        ("garbage.tar.gz", b"\x1f\x8b" + b"\x00" * 50),
        ("garbage.tar.xz", b"not xz at all"),
        ("garbage.tar", b"\x01" * 1024),
    ],
)
def test_corrupt_archives_raise_corrupt_archive(tmp_path: Path, name: str, content: bytes) -> None:
    """Malformed containers raise CorruptArchive, never a raw stdlib exception."""
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(CorruptArchive):
        SafeArchive.open(path)


def test_truncated_tarball_is_corrupt(tmp_path: Path) -> None:
    """A tar.gz cut short fails as CorruptArchive, at open or at read."""
    entries = [(f"f{i}", tarfile.REGTYPE, bytes(range(256)) * 64) for i in range(8)]
    path = make_tar(tmp_path / "t.tar.gz", entries)
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(CorruptArchive), SafeArchive.open(path) as ar:
        for member in ar.members():
            ar.read(member.name)


def test_unknown_suffix_is_unsupported(tmp_path: Path) -> None:
    """Only the documented suffixes are opened."""
    path = tmp_path / "a.rar"
    path.write_bytes(b"Rar!")
    with pytest.raises(UnsupportedArchive):
        SafeArchive.open(path)


def test_closed_archive_refuses_reads(tmp_path: Path) -> None:
    """After the with-block the archive is closed and read() raises."""
    path = make_zip(tmp_path / "a.zip", [("a", b"x")])
    with SafeArchive.open(path) as ar:
        pass
    with pytest.raises(ValueError, match="closed"):
        ar.read("a")
    assert "closed" in repr(ar)


def test_archive_errors_carry_the_path(tmp_path: Path) -> None:
    """Every ArchiveError names the file it is about."""
    path = make_tar(tmp_path / "x.tar.gz", [("../x", tarfile.REGTYPE, b"")])
    with pytest.raises(ArchiveError) as err:
        SafeArchive.open(path)
    assert err.value.path == path
    assert "x.tar.gz" in str(err.value)


@pytest.mark.parametrize("name", ["gone.whl", "gone.tar.gz"])
def test_missing_file_is_an_archive_error(tmp_path: Path, name: str) -> None:
    """A path that does not exist raises an ArchiveError, not a bare OSError."""
    with pytest.raises(ArchiveError):
        SafeArchive.open(tmp_path / name)


def _open_and_read_all(path: Path) -> None:
    with SafeArchive.open(path, ArchiveLimits(max_total_size=8 * MiB)) as ar:
        for member in ar.members():
            if member.is_file:
                ar.read(member.name)


_CORPUS: dict[str, bytes] = {}


def _corpus(suffix: str) -> bytes:
    """A small valid archive of each kind, built once."""
    if suffix not in _CORPUS:
        with tempfile.TemporaryDirectory() as tmp:
            files = {"p/__init__.py": "X = 1\n" * 50, "p/data.txt": "hello\n" * 30}
            if suffix == ".whl":
                path = build_wheel(Path(tmp), "p", "1", files)
            else:
                path = build_sdist(Path(tmp), "p", "1", files)
            _CORPUS[suffix] = path.read_bytes()
    return _CORPUS[suffix]


@settings(max_examples=150, deadline=None)
@given(
    suffix=st.sampled_from([".whl", ".tar.gz"]),
    edits=st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), max_size=8),
    cut=st.integers(min_value=0, max_value=4000),
)
def test_mutated_archives_only_raise_archive_errors(
    tmp_path_factory: pytest.TempPathFactory, suffix: str, edits: list[tuple[int, int]], cut: int
) -> None:
    """Flipped bytes or truncation give a clean read or an ArchiveError, nothing else."""
    data = bytearray(_corpus(suffix))
    for offset, value in edits:
        data[offset % len(data)] = value
    if cut:
        data = data[: max(len(data) - cut, 0)]
    path = tmp_path_factory.mktemp("fuzz") / f"a{suffix}"
    path.write_bytes(bytes(data))
    with contextlib.suppress(ArchiveError):
        _open_and_read_all(path)
