"""The VM side of a job: QEMU started, controlled and torn down; the guest reached over SSH.

- ``machine.py``: :class:`VM`, one QEMU process on a throw-away overlay (start, QMP, stop).
- ``argv.py``: the QEMU command line (:class:`QemuSpec` -> argv; dies with the slave).
- ``disk.py``: the VM's own directory and its qcow2 overlay.
- ``console.py``: the serial console, logged up to a cap.
- ``qmp_channel.py``: the QMP connection, from handshake to close (abort-safe).
- ``qmp_events.py``: a bounded QMP event listener.
- ``accel.py``: KVM or TCG, and whether TCG may be used.
- ``guest.py``: :class:`Guest`, SSH into a running VM (commands, streams, uploads).
- ``errors.py``: :class:`VMError` (guest errors are drawn in ``guest.py``).
"""
