"""The rules of SSL profiles and trusted client certificates (Azure: mutual-authentication
overview, listener-specific SSL policy, and the limits), checked with the gateway's other
rules by `model/validate.py`. The certificates' contents are checked by
control/certificates.py, which parses them."""

from __future__ import annotations

from appgw.model.checks import Checks
from appgw.model.enums import ClientRevocationOptions

# Azure: trusted client CA certificates per SSL profile.
MAX_TRUSTED_CLIENT_CERTIFICATES_PER_PROFILE = 100


def check_ssl_profiles(checks: Checks) -> None:
    props = checks.props
    for entry in props.trusted_client_certificates:
        owner = checks.rid("trustedClientCertificates", entry)
        checks.require_v2(
            owner,
            "properties",
            "ApplicationGatewayTrustedClientCertificateRequiresV2Sku",
            "a trusted client certificate (mutual TLS)",
        )
        if not entry.properties.data:
            checks.add(
                "MissingRequiredProperty",
                owner,
                "properties.data",
                "'data' is required: the CA certificate chain (.cer or .pem) that issues the "
                "clients' certificates",
            )
    for profile in props.ssl_profiles:
        owner = checks.rid("sslProfiles", profile)
        p = profile.properties
        checks.require_v2(
            owner, "properties", "ApplicationGatewaySslProfileRequiresV2Sku", "an SSL profile"
        )
        if p.ssl_policy is not None:
            checks.check_ssl_policy(owner, "properties.sslPolicy", p.ssl_policy)
        references = p.trusted_client_certificates or []
        if len(references) > MAX_TRUSTED_CLIENT_CERTIFICATES_PER_PROFILE:
            checks.add(
                "ApplicationGatewayLimitExceeded",
                owner,
                "properties.trustedClientCertificates",
                f"{len(references)} trusted client certificates; an SSL profile allows at most "
                f"{MAX_TRUSTED_CLIENT_CERTIFICATES_PER_PROFILE}",
            )
        for index, reference in enumerate(references):
            checks.ref(
                owner,
                f"properties.trustedClientCertificates[{index}]",
                reference,
                "trustedClientCertificates",
            )
        settings = p.client_auth_configuration
        asks = settings is not None and (
            settings.verify_client_cert_issuer_dn
            or settings.verify_client_revocation == ClientRevocationOptions.OCSP
        )
        if asks and not references:
            checks.add(
                "ApplicationGatewaySslProfileClientAuthWithoutTrustedCertificates",
                owner,
                "properties.clientAuthConfiguration",
                "checking the client certificate's issuer or revocation needs trusted client "
                "certificates in 'trustedClientCertificates'",
            )
