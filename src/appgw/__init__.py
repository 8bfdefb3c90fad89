"""appgw: a self-hosted application gateway managed like Azure Application Gateway."""

__version__ = "0.1.0"
