"""The web application firewall: Azure's WAF settings as ModSecurity directives over the OWASP
Core Rule Set (seclang.py), and the engine that inspects requests with them (engine.py)."""
