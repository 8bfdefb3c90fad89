"""The data plane's decisions, without I/O or asyncio: request checks, routing, the balancer's
choice, the backend request head, response framing and the retry policy. The protocol classes
in `appgw.dataplane` call these and keep only I/O, flow control and timers."""
