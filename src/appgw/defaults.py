"""Defaults shared by `appgw serve` and the command line, in a module that imports nothing,
so that CLI commands which never serve do not load the server's dependencies."""

DEFAULT_ADMIN_LISTEN = "127.0.0.1:7480"  # loopback: the API is not exposed until asked to be
# Secrets (listener keys) are kept for the newest 10 versions of a gateway: enough for a data
# plane a few versions behind to compile what it reads; older ones lose them at the next commit.
DEFAULT_KEEP_SECRET_VERSIONS = 10
