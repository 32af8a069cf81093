"""Accelerator resolution: never a silent fall back to TCG."""

from __future__ import annotations

import pytest

from slave.vm.accel import Accel, AccelError, resolve_accel


async def test_tcg_is_taken_when_asked_for() -> None:
    """--accel tcg is honoured without probing."""
    assert await resolve_accel("tcg", kvm_works=False) is Accel.TCG


async def test_auto_without_kvm_refuses_and_says_how() -> None:
    """auto on a machine without working KVM is an error pointing at --accel tcg."""
    with pytest.raises(AccelError, match="use --accel tcg explicitly"):
        await resolve_accel(Accel.AUTO, kvm_works=False)


async def test_kvm_requested_but_broken_refuses() -> None:
    """--accel kvm where KVM does not run is an error too."""
    with pytest.raises(AccelError, match="TCG is not a security boundary"):
        await resolve_accel("kvm", kvm_works=False)


async def test_auto_with_kvm_gives_kvm() -> None:
    """auto resolves to KVM when the probe succeeded."""
    assert await resolve_accel("auto", kvm_works=True) is Accel.KVM


async def test_unknown_accelerator_is_refused() -> None:
    """A typo is a clear error."""
    with pytest.raises(AccelError, match="unknown accelerator"):
        await resolve_accel("hvf", kvm_works=True)


def test_cpu_models_and_boundary() -> None:
    """kvm runs -cpu host, tcg -cpu max; only kvm is a security boundary; auto has no model."""
    assert Accel.KVM.cpu_model == "host"
    assert Accel.TCG.cpu_model == "max"
    assert Accel.KVM.is_security_boundary
    assert not Accel.TCG.is_security_boundary
    with pytest.raises(AccelError):
        _ = Accel.AUTO.cpu_model
