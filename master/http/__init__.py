"""The master's HTTP side: JSON API under ``/api/v1/``, live tail, callbacks, web page.

``create_app(ctx)`` (``master.http.app``) builds the ``aiohttp`` application;
the daemon serves it with ``AppRunner``, tests with ``aiohttp_client``.
"""
