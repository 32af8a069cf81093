"""Shared wire protocol of pyti master and slave daemons. The spec is README.md beside this file."""
