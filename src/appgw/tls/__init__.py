"""TLS below its users: trust and verdicts (`trust`), client contexts and presented chains
(`client`), server contexts and Azure's TLS policies (`server`), session-ticket keys shared
between processes (`tickets`). Compile, health and the data plane import it; it imports only
the model and certificates."""
