"""The data plane: asyncio protocols on uvloop that terminate TLS, route and re-encrypt.

Nothing in this package imports the control plane (appgw.control, appgw.api, appgw.store)
except `worker`, the process entry point that follows the store.
"""
