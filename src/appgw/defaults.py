"""Defaults shared by `appgw serve` and the command line, in a module that imports nothing,
so that CLI commands which never serve do not load the server's dependencies."""

DEFAULT_ADMIN_LISTEN = "127.0.0.1:7480"  # loopback: the API is not exposed until asked to be
# Secrets (listener keys) are kept for the newest 10 versions of a gateway: enough for a data
# plane a few versions behind to compile what it reads; older ones lose them at the next commit.
DEFAULT_KEEP_SECRET_VERSIONS = 10
# A PostgreSQL server that works completes a connection (TCP, TLS, authentication) in well under
# a second; 10 s allows a slow link or a busy server, and names a dead one long before psycopg's
# own 130 s.
DEFAULT_STORE_CONNECT_TIMEOUT = 10
MIN_STORE_CONNECT_TIMEOUT = 2  # libpq and psycopg wait at least 2 s, whatever is asked
# The operator's opt-in to share TLS session tickets between instances
# (--session-ticket-secret-file or this variable): a file of random bytes every instance reads,
# like nginx's ssl_session_ticket_key. Without it each instance's workers share keys from a
# random chain of its own, held in memory only.
TICKET_SECRET_FILE_ENV = "APPGW_SESSION_TICKET_SECRET_FILE"
