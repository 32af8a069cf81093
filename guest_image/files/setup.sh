#!/bin/sh
# Runs inside the image's root (chroot) during `pyti image build`, after the
# files of guest_image/files/ were copied in. Arguments: TESTER_MAX_PROCS.
# Host-side steps (keys, bait, wheels) are done by slave/image_builder/rootfs.py.
set -eu
TESTER_MAX_PROCS="$1"
export DEBIAN_FRONTEND=noninteractive LC_ALL=C

echo pyti-guest > /etc/hostname
printf '127.0.0.1 localhost\n127.0.1.1 pyti-guest\n::1 localhost\n' > /etc/hosts
: > /etc/fstab  # root is mounted rw from the kernel command line

# The unprivileged user that runs all package code.
id tester >/dev/null 2>&1 || useradd --uid 1000 --user-group --create-home --shell /bin/bash tester
# No password login at all; '*' rather than 'passwd -l', because sshd without PAM
# refuses even key logins to a locked ('!') account.
usermod -p '*' root
# sshd runs every command through root's login shell: dash starts in half the
# time of bash under TCG (measured: 0.16 s vs 0.38 s on the first command after a restore).
usermod -s /bin/sh root
# Fork bombs: nproc for sessions that go through PAM (su/runuser); the runner also
# sets RLIMIT_NPROC itself when it drops to tester (sshd here runs without PAM).
cat > /etc/security/limits.d/90-pyti-tester.conf <<EOT
tester soft nproc $TESTER_MAX_PROCS
tester hard nproc $TESTER_MAX_PROCS
EOT
echo "$TESTER_MAX_PROCS" > /etc/pyti-tester-max-procs

# SSH only through pyti-ssh.service (sshd -i on the virtio-serial port).
install -m 0644 /opt/pyti/guest/sshd_config /etc/ssh/sshd_config
rm -f /etc/ssh/sshd_config.d/*.conf
install -m 0644 /opt/pyti/guest/pyti-ssh.service /etc/systemd/system/pyti-ssh.service
install -m 0644 /opt/pyti/guest/ssh_wait.py /opt/pyti/ssh_wait.py
systemctl disable ssh.service >/dev/null 2>&1 || true
systemctl mask ssh.service ssh.socket >/dev/null
systemctl enable pyti-ssh.service >/dev/null
systemctl set-default multi-user.target >/dev/null

# The sinkhole network (no NIC: a dummy interface, a resolver that answers every
# name, a catch-all TCP listener; sinkhole.py), up before SSH, so in the snapshot.
for f in sinkhole.py sinkhole.nft sinkhole-net.sh; do
    install -m 0644 "/opt/pyti/guest/$f" "/opt/pyti/$f"
done
install -m 0644 /opt/pyti/guest/pyti-sinkhole.service /etc/systemd/system/pyti-sinkhole.service
systemctl enable pyti-sinkhole.service >/dev/null
systemctl mask nftables.service >/dev/null  # its /etc/nftables.conf flushes the ruleset
rm -f /etc/resolv.conf
printf 'nameserver 127.0.0.1\noptions timeout:2 attempts:1\n' > /etc/resolv.conf

# en_US.UTF-8 beside C.UTF-8, as on a CI runner (jobs run under LANG=C.UTF-8; tests that
# call setlocale with it need it generated).
sed -i 's/^# *en_US.UTF-8 UTF-8/en_US.UTF-8 UTF-8/' /etc/locale.gen
locale-gen >/dev/null

mkdir -p /etc/systemd/journald.conf.d
install -m 0644 /opt/pyti/guest/journald.conf /etc/systemd/journald.conf.d/pyti.conf

# Fast boot: nothing waits on a terminal, a network or a timer. tmp.mount: trixie
# mounts /tmp as tmpfs (RAM); builds there would eat the guest's 512 MiB, so /tmp
# stays on the disk as in bookworm.
for unit in getty@tty1.service serial-getty@ttyS0.service console-getty.service \
        getty.target apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer \
        e2scrub_all.timer e2scrub_reap.service fstrim.timer man-db.timer \
        systemd-timesyncd.service systemd-networkd-wait-online.service \
        systemd-update-utmp.service systemd-update-utmp-runlevel.service \
        systemd-journal-flush.service systemd-random-seed.service \
        systemd-pstore.service systemd-binfmt.service sys-kernel-debug.mount \
        sys-kernel-tracing.mount sys-fs-fuse-connections.mount \
        dev-hugepages.mount dev-mqueue.mount modprobe@fuse.service \
        modprobe@drm.service modprobe@configfs.service sys-kernel-config.mount \
        logrotate.timer remote-fs.target cryptsetup.target \
        tmp.mount; do
    systemctl mask "$unit" >/dev/null
done

# A small initrd that can mount root from virtio-blk.
sed -i 's/^MODULES=.*/MODULES=list/' /etc/initramfs-tools/initramfs.conf
cat /opt/pyti/guest/initramfs-modules >> /etc/initramfs-tools/modules
update-initramfs -u -k all >/dev/null

apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/*.log /opt/pyti/guest
