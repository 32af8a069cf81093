"""Wait until the host opens virtio-serial port org.pyti.ssh, then become `sshd -i` on it.

Runs in the guest (as pyti-ssh.service). poll() on the port reports POLLHUP for
as long as the host side is closed, so poll() alone would spin; the driver sends
SIGIO to the owner of the file when the host opens or closes the port, so we
block SIGIO, enable O_ASYNC and wait for it, re-checking poll() after each one
(the timeout is only a safety net). After a RAM snapshot is restored this
process is found waiting here, which is why restore-to-SSH is fast.
"""

import fcntl
import os
import select
import signal
import sys
import time

PORT_NAME = "org.pyti.ssh"
SSHD = ["/usr/sbin/sshd", "-i", "-f", "/etc/ssh/sshd_config"]


def find_port() -> str | None:
    link = "/dev/virtio-ports/" + PORT_NAME
    if os.path.exists(link):
        return link
    # udev may not have made the symlink yet: the port's name is in sysfs.
    try:
        entries = os.listdir("/sys/class/virtio-ports")
    except FileNotFoundError:
        return None
    for entry in entries:
        try:
            with open(f"/sys/class/virtio-ports/{entry}/name") as f:
                if f.read().strip() == PORT_NAME and os.path.exists("/dev/" + entry):
                    return "/dev/" + entry
        except OSError:
            continue
    return None


def main() -> None:
    # Only at boot: the device node appears when virtio_console has probed.
    deadline = time.monotonic() + 300
    while (path := find_port()) is None:
        if time.monotonic() > deadline:
            sys.exit(f"pyti-ssh: port {PORT_NAME} not found")
        time.sleep(0.05)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGIO})
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
    fcntl.fcntl(fd, fcntl.F_SETOWN, os.getpid())
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_ASYNC)
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    while any(ev & select.POLLHUP for _, ev in poller.poll(0)):
        signal.sigtimedwait({signal.SIGIO}, 2.0)
    fcntl.fcntl(fd, fcntl.F_SETFL, flags)
    os.dup2(fd, 0)
    os.dup2(fd, 1)
    os.close(fd)
    # More SIGIOs may be pending (the host's first bytes raise one too): their
    # default action would kill us on unblocking, losing those bytes. Ignoring
    # discards them; sshd never uses SIGIO. The mask survives exec: unblock.
    signal.signal(signal.SIGIO, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGIO})
    os.execv(SSHD[0], SSHD)  # noqa: S606 (becoming sshd is the point)


main()
