"""What goes into a guest image besides Debian: ``recipes/<name>.toml`` and ``files/``.

Package data, not code: the image builder finds both through
``importlib.resources`` (see ``slave.image_builder.resources``), so a wheel
install builds the same images, with the same recipe hash, as a source checkout.
Nothing in ``files/`` runs on the host; it is copied into the guest.
"""
