"""Portal SSL settings: SSL profiles with mutual TLS, trusted client certificates and a
listener's "Enable SSL Profile", driven over HTTP the way a browser without JavaScript posts
them (the page's own form, CSRF token and all, files chosen); every outcome checked through
the REST API."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from cryptography import x509

from helpers import RG, SUB, Api, Pfx, skeleton
from portal_forms import (
    Browser,
    field_error,
    general_error,
    is_checked,
    selected,
    signed_in_portal,
    stored,
    value_of,
)

PORTAL = f"/portal/gateways/{SUB}/{RG}/appgw"
SSL = f"{PORTAL}/ssl"
ADD_PROFILE = f"{PORTAL}/sslprofiles/add"
ADD_CLIENT_CA = f"{PORTAL}/clientcertificates/add"
LISTENER = "appGatewayHttpListener"
EDIT_LISTENER = f"{PORTAL}/listeners/{LISTENER}/edit"


# --- a browser without JavaScript ----------------------------------------------------------------


def row_of(page: str, name: str) -> str:
    """The text of the table row whose first cell links `name`."""
    match = re.search(rf"<tr>\s*<td[^>]*><a [^>]*>{re.escape(name)}</a>.*?</tr>", page, re.S)
    assert match, f"no row {name}"
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", match[0])).split())


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client_root() -> trustme.CA:
    return trustme.CA(organization_name="Contoso Clients Root")


@pytest.fixture(scope="module")
def client_issuer(client_root: trustme.CA) -> trustme.CA:
    return client_root.create_child_ca()


@pytest.fixture(scope="module")
def chain_pem(client_root: trustme.CA, client_issuer: trustme.CA) -> bytes:
    """Azure's upload: the root and the intermediate that issues the clients, in one file."""
    return client_root.cert_pem.bytes() + client_issuer.cert_pem.bytes()


@pytest.fixture
def portal(tmp_path: Path, pfx: Pfx, root_cer: str) -> Iterator[tuple[Api, Browser]]:
    with signed_in_portal(tmp_path / "data", skeleton(pfx, root_cer)) as signed_in:
        yield signed_in


def named(document: dict[str, Any], collection: str, name: str) -> dict[str, Any] | None:
    found = [c for c in document["properties"].get(collection, []) if c["name"] == name]
    return found[0] if found else None


def properties_of(api: Api, collection: str, name: str) -> dict[str, Any]:
    found = named(stored(api), collection, name)
    assert found is not None, f"no {collection} entry '{name}'"
    return found["properties"]  # type: ignore[no-any-return]


def saved(answer: httpx.Response) -> None:
    assert answer.status_code == 303, general_error(answer.text) or answer.text
    assert answer.headers["location"] == SSL


# --- tests ---------------------------------------------------------------------------------------


def test_a_profile_with_an_uploaded_client_ca_chain_on_an_https_listener(
    portal: tuple[Api, Browser], chain_pem: bytes, client_issuer: trustme.CA
) -> None:
    api, browser = portal
    page = browser.get(SSL)
    for words in (
        "SSL profiles",
        "No SSL profiles.",
        "+ Add SSL profile",
        "Trusted client certificates",
    ):
        assert words in page, words

    form = browser.get(ADD_PROFILE)
    for words in (
        "Client Authentication",
        "Trusted client certificates",
        "Verify client certificate issuer's DN",
        "Verify client certificate revocation",
        "SSL Policy",
        "AppGwSslPolicy20220101S",
        "The gateway's SSL policy",
    ):
        assert words in html.unescape(form), words
    saved(
        browser.submit(
            form,
            ADD_PROFILE,
            files={"ca_file": ("contoso-clients.pem", chain_pem)},
            profile_name="mutual",
            ca_name="contoso-clients",
            verify_issuer_dn="on",
            policy_type="Predefined",
            policy_name="AppGwSslPolicy20220101S",
        )
    )
    document = stored(api)
    client_ca = named(document, "trustedClientCertificates", "contoso-clients")
    assert client_ca is not None
    issuer_dn = client_ca["properties"]["clientCertIssuerDN"]
    # Clients are issued by the intermediate: its subject is the DN verified.
    intermediate = x509.load_pem_x509_certificate(client_issuer.cert_pem.bytes())
    assert issuer_dn == intermediate.subject.rfc4514_string()
    profile = named(document, "sslProfiles", "mutual")
    assert profile is not None
    p = profile["properties"]
    assert [r["id"] for r in p["trustedClientCertificates"]] == [client_ca["id"]]
    assert p["clientAuthConfiguration"]["verifyClientCertIssuerDN"] is True
    assert p["clientAuthConfiguration"]["verifyClientRevocation"] == "None"
    assert p["sslPolicy"] == {"policyType": "Predefined", "policyName": "AppGwSslPolicy20220101S"}

    # The listener's HTTPS settings: Azure's "Enable SSL Profile" with the profile chosen.
    listener_form = browser.get(EDIT_LISTENER)
    assert "Enable SSL Profile" in listener_form and '<option value="mutual"' in listener_form
    refused = browser.submit(listener_form, EDIT_LISTENER, ssl_profile_on="on", ssl_profile="")
    assert refused.status_code == 400
    assert "Choose an SSL profile" in field_error(refused.text, "ssl_profile")
    answer = browser.submit(listener_form, EDIT_LISTENER, ssl_profile_on="on", ssl_profile="mutual")
    assert answer.status_code == 303, general_error(answer.text) or answer.text
    listener = named(stored(api), "httpListeners", LISTENER)
    assert listener is not None
    assert listener["properties"]["sslProfile"]["id"] == profile["id"]
    shown = browser.get(EDIT_LISTENER)
    assert is_checked(shown, "ssl_profile_on") and selected(shown, "ssl_profile") == "mutual"

    # Listed, with the issuer DN the server computed and who uses what.
    page = browser.get(SSL)
    row = row_of(page, "mutual")
    for words in (
        "On, issuer's DN verified",
        "contoso-clients",
        "AppGwSslPolicy20220101S",
        LISTENER,
    ):
        assert words in row, (words, row)
    row = row_of(page, "contoso-clients")
    assert issuer_dn in row and "mutual" in row, row

    # Edit shows what was stored; OCSP is saved.
    edit = f"{PORTAL}/sslprofiles/mutual/edit"
    form = browser.get(edit)
    assert is_checked(form, "existing_ca", "contoso-clients") and is_checked(
        form, "verify_issuer_dn"
    )
    assert is_checked(form, "policy_name", "AppGwSslPolicy20220101S")
    saved(browser.submit(form, edit, revocation="OCSP"))
    auth = properties_of(api, "sslProfiles", "mutual")["clientAuthConfiguration"]
    assert auth == {"verifyClientCertIssuerDN": True, "verifyClientRevocation": "OCSP"}

    # In use: neither the profile nor its client CA goes, and the page says by whom.
    page = browser.get(SSL)
    answer = browser.submit(page, f"{PORTAL}/sslprofiles/mutual/delete")
    assert answer.status_code == 400
    assert f"Listeners using it: {LISTENER}" in general_error(answer.text)
    answer = browser.submit(page, f"{PORTAL}/clientcertificates/contoso-clients/delete")
    assert answer.status_code == 400
    assert "SSL profiles trusting it: mutual" in general_error(answer.text)

    # Off on the listener, then both are deleted.
    answer = browser.submit(browser.get(EDIT_LISTENER), EDIT_LISTENER, unticked=("ssl_profile_on",))
    assert answer.status_code == 303, general_error(answer.text) or answer.text
    assert "sslProfile" not in properties_of(api, "httpListeners", LISTENER)
    page = browser.get(SSL)
    saved(browser.submit(page, f"{PORTAL}/sslprofiles/mutual/delete"))
    saved(browser.submit(browser.get(SSL), f"{PORTAL}/clientcertificates/contoso-clients/delete"))
    document = stored(api)
    assert document["properties"].get("sslProfiles", []) == []
    assert document["properties"].get("trustedClientCertificates", []) == []
    assert "No SSL profiles." in browser.get(SSL)


def test_a_leaf_uploaded_as_client_ca_is_refused_next_to_the_file_and_the_form_kept(
    portal: tuple[Api, Browser], chain_pem: bytes, client_issuer: trustme.CA
) -> None:
    api, browser = portal
    leaf = client_issuer.issue_cert("alice@contoso.test").cert_chain_pems[0].bytes()
    answer = browser.submit(
        browser.get(ADD_PROFILE),
        ADD_PROFILE,
        files={"ca_file": ("alice.pem", leaf)},
        profile_name="mutual",
        ca_name="alice",
        verify_issuer_dn="on",
        revocation="OCSP",
        policy_type="gateway",
    )
    assert answer.status_code == 400
    page = answer.text
    assert "is not a CA certificate" in field_error(page, "ca_file"), page
    assert general_error(page) == ""
    assert value_of(page, "profile_name") == "mutual" and value_of(page, "ca_name") == "alice"
    assert is_checked(page, "verify_issuer_dn") and selected(page, "revocation") == "OCSP"
    assert is_checked(page, "policy_type", "gateway")
    assert "alice.pem" in page and "kept from your last submit" in page
    assert stored(api)["properties"].get("sslProfiles", []) == []

    # A problem of the form itself keeps a good file: the fix is the name alone.
    answer = browser.submit(
        page, ADD_PROFILE, files={"ca_file": ("chain.pem", chain_pem)}, profile_name=""
    )
    assert answer.status_code == 400
    assert "Enter a name" in field_error(answer.text, "profile_name")
    assert "chain.pem" in answer.text and "kept from your last submit" in answer.text
    saved(browser.submit(answer.text, ADD_PROFILE, profile_name="mutual"))
    profile = named(stored(api), "sslProfiles", "mutual")
    assert profile is not None and "sslPolicy" not in profile["properties"]
    assert row_of(browser.get(SSL), "mutual").count("The gateway's") == 1

    # The server's other refusals go next to their fields too.
    edit = f"{PORTAL}/sslprofiles/mutual/edit"
    answer = browser.submit(browser.get(edit), edit, policy_type="Custom", cipher_suites=[])
    assert answer.status_code == 400
    assert field_error(answer.text, "cipher_suites") or field_error(answer.text, "policy_type")
    assert general_error(answer.text) == ""
    answer = browser.submit(browser.get(edit), edit, unticked=("existing_ca",))
    assert answer.status_code == 400
    assert "trusted client certificates" in field_error(answer.text, "verify_issuer_dn")


def test_trusted_client_certificates_are_uploaded_and_deleted_on_their_own(
    portal: tuple[Api, Browser], chain_pem: bytes
) -> None:
    api, browser = portal
    form = browser.get(ADD_CLIENT_CA)
    answer = browser.submit(form, ADD_CLIENT_CA, ca_name="clients")
    assert answer.status_code == 400 and "Choose the CA certificate" in field_error(
        answer.text, "ca_file"
    )
    answer = browser.submit(
        form, ADD_CLIENT_CA, files={"ca_file": ("x.pem", b"not a certificate")}, ca_name="clients"
    )
    assert answer.status_code == 400 and field_error(answer.text, "ca_file")
    assert general_error(answer.text) == ""
    saved(
        browser.submit(
            form, ADD_CLIENT_CA, files={"ca_file": ("chain.pem", chain_pem)}, ca_name="clients"
        )
    )
    certificate = named(stored(api), "trustedClientCertificates", "clients")
    assert certificate is not None and certificate["properties"]["clientCertIssuerDN"]
    assert certificate["properties"]["clientCertIssuerDN"] in row_of(browser.get(SSL), "clients")
    edit = browser.get(f"{PORTAL}/clientcertificates/clients/edit")
    assert certificate["properties"]["clientCertIssuerDN"] in html.unescape(edit)
    # Offered on the profile form with its issuer DN.
    assert 'name="existing_ca" value="clients"' in browser.get(ADD_PROFILE)
    saved(browser.submit(browser.get(SSL), f"{PORTAL}/clientcertificates/clients/delete"))
    assert named(stored(api), "trustedClientCertificates", "clients") is None
