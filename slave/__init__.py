"""The pyti slave daemon: runs every job in a fresh QEMU VM with no network."""
