"""Azure's enumerations for `Microsoft.Network/applicationGateways`, spelled as Azure spells them.

ARM accepts enum values case-insensitively and answers with the canonical spelling, so every
enum here matches its input without regard to case.
"""

from __future__ import annotations

from enum import StrEnum


class AzureEnum(StrEnum):
    @classmethod
    def _missing_(cls, value: object) -> AzureEnum | None:
        if isinstance(value, str):
            folded = value.casefold()
            for member in cls:
                if member.value.casefold() == folded:
                    return member
        return None


class SkuName(AzureEnum):
    STANDARD_SMALL = "Standard_Small"
    STANDARD_MEDIUM = "Standard_Medium"
    STANDARD_LARGE = "Standard_Large"
    WAF_MEDIUM = "WAF_Medium"
    WAF_LARGE = "WAF_Large"
    STANDARD_V2 = "Standard_v2"
    WAF_V2 = "WAF_v2"
    BASIC = "Basic"


class SkuTier(AzureEnum):
    STANDARD = "Standard"
    WAF = "WAF"
    STANDARD_V2 = "Standard_v2"
    WAF_V2 = "WAF_v2"
    BASIC = "Basic"


class FirewallMode(AzureEnum):
    DETECTION = "Detection"
    PREVENTION = "Prevention"


class WafRuleSetType(AzureEnum):
    OWASP = "OWASP"


class SkuFamily(AzureEnum):
    GENERATION_1 = "Generation_1"
    GENERATION_2 = "Generation_2"


class Protocol(AzureEnum):
    HTTP = "Http"
    HTTPS = "Https"


class ProbeProtocol(AzureEnum):
    HTTP = "Http"
    HTTPS = "Https"
    TCP = "Tcp"
    TLS = "Tls"


class CookieBasedAffinity(AzureEnum):
    ENABLED = "Enabled"
    DISABLED = "Disabled"


class IPAllocationMethod(AzureEnum):
    STATIC = "Static"
    DYNAMIC = "Dynamic"


class RuleType(AzureEnum):
    BASIC = "Basic"
    PATH_BASED_ROUTING = "PathBasedRouting"


class RedirectType(AzureEnum):
    PERMANENT = "Permanent"
    FOUND = "Found"
    SEE_OTHER = "SeeOther"
    TEMPORARY = "Temporary"


class SslPolicyType(AzureEnum):
    PREDEFINED = "Predefined"
    CUSTOM = "Custom"
    CUSTOM_V2 = "CustomV2"


class SslProtocol(AzureEnum):
    TLS_1_0 = "TLSv1_0"
    TLS_1_1 = "TLSv1_1"
    TLS_1_2 = "TLSv1_2"
    TLS_1_3 = "TLSv1_3"


class SslPolicyName(AzureEnum):
    POLICY_20150501 = "AppGwSslPolicy20150501"
    POLICY_20170401 = "AppGwSslPolicy20170401"
    POLICY_20170401S = "AppGwSslPolicy20170401S"
    POLICY_20220101 = "AppGwSslPolicy20220101"
    POLICY_20220101S = "AppGwSslPolicy20220101S"


class SslCipherSuite(AzureEnum):
    """The 28 legacy suites of the REST enum plus the two TLS 1.3 suites CustomV2 accepts."""

    ECDHE_RSA_AES_256_CBC_SHA384 = "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384"
    ECDHE_RSA_AES_128_CBC_SHA256 = "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256"
    ECDHE_RSA_AES_256_CBC_SHA = "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA"
    ECDHE_RSA_AES_128_CBC_SHA = "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"
    DHE_RSA_AES_256_GCM_SHA384 = "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384"
    DHE_RSA_AES_128_GCM_SHA256 = "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256"
    DHE_RSA_AES_256_CBC_SHA = "TLS_DHE_RSA_WITH_AES_256_CBC_SHA"
    DHE_RSA_AES_128_CBC_SHA = "TLS_DHE_RSA_WITH_AES_128_CBC_SHA"
    RSA_AES_256_GCM_SHA384 = "TLS_RSA_WITH_AES_256_GCM_SHA384"
    RSA_AES_128_GCM_SHA256 = "TLS_RSA_WITH_AES_128_GCM_SHA256"
    RSA_AES_256_CBC_SHA256 = "TLS_RSA_WITH_AES_256_CBC_SHA256"
    RSA_AES_128_CBC_SHA256 = "TLS_RSA_WITH_AES_128_CBC_SHA256"
    RSA_AES_256_CBC_SHA = "TLS_RSA_WITH_AES_256_CBC_SHA"
    RSA_AES_128_CBC_SHA = "TLS_RSA_WITH_AES_128_CBC_SHA"
    ECDHE_ECDSA_AES_256_GCM_SHA384 = "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"
    ECDHE_ECDSA_AES_128_GCM_SHA256 = "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"
    ECDHE_ECDSA_AES_256_CBC_SHA384 = "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384"
    ECDHE_ECDSA_AES_128_CBC_SHA256 = "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256"
    ECDHE_ECDSA_AES_256_CBC_SHA = "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA"
    ECDHE_ECDSA_AES_128_CBC_SHA = "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"
    DHE_DSS_AES_256_CBC_SHA256 = "TLS_DHE_DSS_WITH_AES_256_CBC_SHA256"
    DHE_DSS_AES_128_CBC_SHA256 = "TLS_DHE_DSS_WITH_AES_128_CBC_SHA256"
    DHE_DSS_AES_256_CBC_SHA = "TLS_DHE_DSS_WITH_AES_256_CBC_SHA"
    DHE_DSS_AES_128_CBC_SHA = "TLS_DHE_DSS_WITH_AES_128_CBC_SHA"
    RSA_3DES_EDE_CBC_SHA = "TLS_RSA_WITH_3DES_EDE_CBC_SHA"
    DHE_DSS_3DES_EDE_CBC_SHA = "TLS_DHE_DSS_WITH_3DES_EDE_CBC_SHA"
    ECDHE_RSA_AES_128_GCM_SHA256 = "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
    ECDHE_RSA_AES_256_GCM_SHA384 = "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"
    TLS_AES_128_GCM_SHA256 = "TLS_AES_128_GCM_SHA256"
    TLS_AES_256_GCM_SHA384 = "TLS_AES_256_GCM_SHA384"


class CustomErrorStatusCode(AzureEnum):
    HTTP_400 = "HttpStatus400"
    HTTP_403 = "HttpStatus403"
    HTTP_404 = "HttpStatus404"
    HTTP_405 = "HttpStatus405"
    HTTP_408 = "HttpStatus408"
    HTTP_500 = "HttpStatus500"
    HTTP_502 = "HttpStatus502"
    HTTP_503 = "HttpStatus503"
    HTTP_504 = "HttpStatus504"


class OperationalState(AzureEnum):
    STOPPED = "Stopped"
    STARTING = "Starting"
    RUNNING = "Running"
    STOPPING = "Stopping"


class ClientRevocationOptions(AzureEnum):
    NONE = "None"
    OCSP = "OCSP"


class ClientAuthMode(AzureEnum):
    STRICT = "Strict"
    PASSTHROUGH = "Passthrough"


V1_SKU_NAMES = frozenset(
    {
        SkuName.STANDARD_SMALL,
        SkuName.STANDARD_MEDIUM,
        SkuName.STANDARD_LARGE,
        SkuName.WAF_MEDIUM,
        SkuName.WAF_LARGE,
    }
)
