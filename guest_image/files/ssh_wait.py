"""Serve one SSH session on virtio-serial port org.pyti.ssh (runs in the guest).

pyti-ssh.service runs this and restarts it after every session. It starts
`sshd -i` at once, on a socketpair, so sshd's own start-up (exec, dynamic
linking, config, host key, banner) is done before the host ever connects -
and before a snapshot is taken, so a restored guest does not redo it. Then it
waits for the host to open the port and relays bytes both ways until either
side closes.

Waiting: poll() on the port reports POLLHUP for as long as the host side is
closed, so poll() alone would spin; the driver sends SIGIO to the file's owner
when the host opens or closes the port, so we block SIGIO, enable O_ASYNC and
wait for it, re-checking poll() after each (the timeout is only a safety net).
"""

import fcntl
import os
import select
import signal
import socket
import sys
import time

PORT_NAME = "org.pyti.ssh"
SSHD = ["/usr/sbin/sshd", "-i", "-f", "/etc/ssh/sshd_config"]
CHUNK = 65536
#: Bytes buffered towards one side before we stop reading from the other.
HIGH_WATER = 1 << 20


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


def start_sshd() -> tuple[socket.socket, int]:
    ours, theirs = socket.socketpair()
    fd = theirs.fileno()
    actions = [(os.POSIX_SPAWN_DUP2, fd, 0), (os.POSIX_SPAWN_DUP2, fd, 1)]
    # Our blocked SIGIO must not be inherited (setsigmask).
    pid = os.posix_spawn(SSHD[0], SSHD, os.environ, file_actions=actions, setsigmask=())
    theirs.close()
    return ours, pid


def wait_for_host(port: int) -> None:
    fcntl.fcntl(port, fcntl.F_SETOWN, os.getpid())
    flags = fcntl.fcntl(port, fcntl.F_GETFL)
    fcntl.fcntl(port, fcntl.F_SETFL, flags | os.O_ASYNC)
    poller = select.poll()
    poller.register(port, select.POLLIN)
    while any(ev & select.POLLHUP for _, ev in poller.poll(0)):
        signal.sigtimedwait({signal.SIGIO}, 2.0)
    fcntl.fcntl(port, fcntl.F_SETFL, flags)


def relay(port: int, sshd: socket.socket) -> None:
    """Copy bytes both ways without ever blocking on one side (no deadlock).

    Returns once one side has closed and what it sent has been passed on
    (as far as the other side still takes it).
    """
    s = sshd.fileno()
    os.set_blocking(port, False)
    os.set_blocking(s, False)
    to_sshd = bytearray()
    to_host = bytearray()
    host_open = sshd_open = True
    poller = select.poll()
    while (host_open or to_sshd) and (sshd_open or to_host):
        # A closed side is unregistered: its POLLHUP would wake us for ever.
        if host_open:
            want = select.POLLIN if len(to_sshd) < HIGH_WATER else 0
            poller.register(port, want | (select.POLLOUT if to_host else 0))
        if sshd_open:
            want = select.POLLIN if len(to_host) < HIGH_WATER else 0
            poller.register(s, want | (select.POLLOUT if to_sshd else 0))
        for fd, ev in poller.poll():
            try:
                if fd == port:
                    if ev & select.POLLOUT and to_host:
                        del to_host[: os.write(port, to_host)]
                    if ev & (select.POLLIN | select.POLLHUP | select.POLLERR):
                        data = os.read(port, CHUNK)
                        to_sshd += data
                        if not data:  # the host closed: the session is over
                            host_open = False
                            to_host.clear()
                            poller.unregister(port)
                else:
                    if ev & select.POLLOUT and to_sshd:
                        del to_sshd[: os.write(s, to_sshd)]
                    if ev & (select.POLLIN | select.POLLHUP | select.POLLERR):
                        data = os.read(s, CHUNK)
                        to_host += data
                        if not data:  # sshd is gone: pass on what it said
                            sshd_open = False
                            to_sshd.clear()
                            poller.unregister(s)
            except BlockingIOError:
                continue
            except OSError:
                return  # a side vanished mid-write: the session is over


def main() -> None:
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGIO})
    sshd, pid = start_sshd()
    # Only at boot: the device node appears when virtio_console has probed.
    deadline = time.monotonic() + 300
    while (path := find_port()) is None:
        if time.monotonic() > deadline:
            sys.exit(f"pyti-ssh: port {PORT_NAME} not found")
        time.sleep(0.05)
    port = os.open(path, os.O_RDWR | os.O_NOCTTY)
    wait_for_host(port)
    try:
        relay(port, sshd)
    finally:
        sshd.close()
        os.close(port)
        # sshd sees EOF and exits; make sure it does not outlive the session.
        for _ in range(50):
            if os.waitpid(pid, os.WNOHANG)[0]:
                break
            time.sleep(0.1)
        else:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


if __name__ == "__main__":
    main()
