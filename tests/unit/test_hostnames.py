"""is_ip_address agrees with the standard library's ipaddress on every string."""

from __future__ import annotations

import ipaddress

from hypothesis import given, strategies as st

from appgw.hostnames import is_ip_address


def reference(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


@given(
    st.one_of(
        st.ip_addresses().map(str),
        st.text(alphabet="0123456789.:abcdefABCDEF% x", max_size=45),
        st.text(max_size=20),
    )
)
def test_agrees_with_ipaddress(text: str) -> None:
    assert is_ip_address(text) == reference(text)


def test_examples() -> None:
    for text in ("10.0.0.4", "::1", "fe80::1%eth0", "2001:db8::8a2e:370:7334"):
        assert is_ip_address(text)
    for text in ("01.2.3.4", "1.2.3", "app.contoso.com", "1.2.3.4 ", "", "256.0.0.1"):
        assert not is_ip_address(text)
