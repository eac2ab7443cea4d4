"""`pvenode cert info --output-format json`: the node's certificates and fingerprints.

`pvecm add <peer> --fingerprint FP` pins the peer's API certificate (pve-ssl.pem, or
pveproxy-ssl.pem when a custom one is installed, which pveproxy then serves). The
entries' keys (filename, fingerprint, subject, ...) are those of PVE's
/nodes/{node}/certificates/info API, written from its schema, not from a recording.
"""

from __future__ import annotations

import json

from harness.errors import ParseError

SERVED_FIRST = ("pveproxy-ssl.pem", "pve-ssl.pem")


def api_fingerprint(text: str) -> str:
    """The SHA-256 fingerprint of the certificate pveproxy serves."""
    try:
        entries = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParseError("pvenode cert info", f"not JSON ({exc})", text) from None
    if not isinstance(entries, list):
        raise ParseError("pvenode cert info", "expected a list of certificates", text)
    by_name = {e.get("filename"): e for e in entries if isinstance(e, dict)}
    for name in SERVED_FIRST:
        fingerprint = by_name.get(name, {}).get("fingerprint")
        if fingerprint:
            return str(fingerprint)
    raise ParseError("pvenode cert info", f"no {' or '.join(SERVED_FIRST)} with a "
                     "fingerprint", text)
