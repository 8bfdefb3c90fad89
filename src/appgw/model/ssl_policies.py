"""Azure's predefined TLS policies (spec §4.3) and what each generation of policy may contain."""

from __future__ import annotations

from dataclasses import dataclass

from appgw.model.enums import SslCipherSuite as C, SslPolicyName, SslProtocol


@dataclass(frozen=True, slots=True)
class PredefinedPolicy:
    name: SslPolicyName
    min_protocol_version: SslProtocol
    cipher_suites: tuple[C, ...]  # server preference order
    # Retired on 31 Aug 2025 with TLS 1.0/1.1: cannot be associated with a gateway any more.
    retired: bool = False
    # The 2022 generation (and CustomV2) exists on v2 SKUs only.
    v2_only: bool = False


_POLICY_20170401_SUITES = (
    C.ECDHE_ECDSA_AES_128_GCM_SHA256,
    C.ECDHE_ECDSA_AES_256_GCM_SHA384,
    C.ECDHE_ECDSA_AES_128_CBC_SHA,
    C.ECDHE_ECDSA_AES_256_CBC_SHA,
    C.ECDHE_ECDSA_AES_128_CBC_SHA256,
    C.ECDHE_ECDSA_AES_256_CBC_SHA384,
    C.ECDHE_RSA_AES_256_GCM_SHA384,
    C.ECDHE_RSA_AES_128_GCM_SHA256,
    C.ECDHE_RSA_AES_128_CBC_SHA,
    C.ECDHE_RSA_AES_256_CBC_SHA,
    C.RSA_AES_256_GCM_SHA384,
    C.RSA_AES_128_GCM_SHA256,
    C.RSA_AES_256_CBC_SHA256,
    C.RSA_AES_128_CBC_SHA256,
    C.RSA_AES_256_CBC_SHA,
    C.RSA_AES_128_CBC_SHA,
)

LEGACY_CIPHER_SUITES: tuple[C, ...] = (
    C.ECDHE_RSA_AES_256_GCM_SHA384,
    C.ECDHE_RSA_AES_128_GCM_SHA256,
    C.ECDHE_RSA_AES_256_CBC_SHA384,
    C.ECDHE_RSA_AES_128_CBC_SHA256,
    C.ECDHE_RSA_AES_256_CBC_SHA,
    C.ECDHE_RSA_AES_128_CBC_SHA,
    C.DHE_RSA_AES_256_GCM_SHA384,
    C.DHE_RSA_AES_128_GCM_SHA256,
    C.DHE_RSA_AES_256_CBC_SHA,
    C.DHE_RSA_AES_128_CBC_SHA,
    C.RSA_AES_256_GCM_SHA384,
    C.RSA_AES_128_GCM_SHA256,
    C.RSA_AES_256_CBC_SHA256,
    C.RSA_AES_128_CBC_SHA256,
    C.RSA_AES_256_CBC_SHA,
    C.RSA_AES_128_CBC_SHA,
    C.ECDHE_ECDSA_AES_256_GCM_SHA384,
    C.ECDHE_ECDSA_AES_128_GCM_SHA256,
    C.ECDHE_ECDSA_AES_256_CBC_SHA384,
    C.ECDHE_ECDSA_AES_128_CBC_SHA256,
    C.ECDHE_ECDSA_AES_256_CBC_SHA,
    C.ECDHE_ECDSA_AES_128_CBC_SHA,
    C.DHE_DSS_AES_256_CBC_SHA256,
    C.DHE_DSS_AES_128_CBC_SHA256,
    C.DHE_DSS_AES_256_CBC_SHA,
    C.DHE_DSS_AES_128_CBC_SHA,
    C.RSA_3DES_EDE_CBC_SHA,
    C.DHE_DSS_3DES_EDE_CBC_SHA,
)

TLS13_CIPHER_SUITES = (C.TLS_AES_128_GCM_SHA256, C.TLS_AES_256_GCM_SHA384)

# Suites the TLS 1.0/1.1 retirement removed from Custom policies (spec §4.4).
RETIRED_CUSTOM_SUITES = frozenset(
    {
        C.ECDHE_RSA_AES_256_CBC_SHA384,
        C.ECDHE_RSA_AES_128_CBC_SHA256,
        C.DHE_RSA_AES_256_GCM_SHA384,
        C.DHE_RSA_AES_128_GCM_SHA256,
        C.DHE_RSA_AES_256_CBC_SHA,
        C.DHE_RSA_AES_128_CBC_SHA,
        C.DHE_DSS_AES_256_CBC_SHA256,
        C.DHE_DSS_AES_128_CBC_SHA256,
        C.DHE_DSS_AES_256_CBC_SHA,
        C.DHE_DSS_AES_128_CBC_SHA,
        C.RSA_3DES_EDE_CBC_SHA,
        C.DHE_DSS_3DES_EDE_CBC_SHA,
    }
)

# FAQ: a custom policy must enable one of these SHA-256 suites.
REQUIRED_ONE_OF_SUITES = frozenset(
    {
        C.ECDHE_RSA_AES_128_GCM_SHA256,
        C.ECDHE_RSA_AES_128_CBC_SHA256,
        C.DHE_RSA_AES_128_GCM_SHA256,
        C.RSA_AES_128_GCM_SHA256,
        C.RSA_AES_256_CBC_SHA256,
        C.RSA_AES_128_CBC_SHA256,
    }
)

PREDEFINED_POLICIES: dict[SslPolicyName, PredefinedPolicy] = {
    policy.name: policy
    for policy in (
        PredefinedPolicy(
            SslPolicyName.POLICY_20150501, SslProtocol.TLS_1_0, LEGACY_CIPHER_SUITES, retired=True
        ),
        PredefinedPolicy(
            SslPolicyName.POLICY_20170401,
            SslProtocol.TLS_1_1,
            _POLICY_20170401_SUITES,
            retired=True,
        ),
        PredefinedPolicy(
            SslPolicyName.POLICY_20170401S, SslProtocol.TLS_1_2, _POLICY_20170401_SUITES
        ),
        # Azure documents only membership of the 2022 policies; order: TLS 1.3, ECDSA/RSA GCM, CBC.
        PredefinedPolicy(
            SslPolicyName.POLICY_20220101,
            SslProtocol.TLS_1_2,
            (
                *TLS13_CIPHER_SUITES,
                C.ECDHE_ECDSA_AES_256_GCM_SHA384,
                C.ECDHE_ECDSA_AES_128_GCM_SHA256,
                C.ECDHE_RSA_AES_256_GCM_SHA384,
                C.ECDHE_RSA_AES_128_GCM_SHA256,
                C.ECDHE_ECDSA_AES_256_CBC_SHA384,
                C.ECDHE_ECDSA_AES_128_CBC_SHA256,
                C.ECDHE_RSA_AES_256_CBC_SHA384,
                C.ECDHE_RSA_AES_128_CBC_SHA256,
            ),
            v2_only=True,
        ),
        PredefinedPolicy(
            SslPolicyName.POLICY_20220101S,
            SslProtocol.TLS_1_2,
            (
                *TLS13_CIPHER_SUITES,
                C.ECDHE_ECDSA_AES_256_GCM_SHA384,
                C.ECDHE_ECDSA_AES_128_GCM_SHA256,
                C.ECDHE_RSA_AES_256_GCM_SHA384,
                C.ECDHE_RSA_AES_128_GCM_SHA256,
            ),
            v2_only=True,
        ),
    )
}
