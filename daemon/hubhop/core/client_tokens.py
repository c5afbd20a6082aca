"""Client tokens: who is calling the local endpoint, and what that caller may ask for.

Rules:
- A `[[tokens]]` entry names a client (`name`) and holds the SHA-256 of its bearer token
  (`sha256`, 64 hex digits), never the token itself, so a config file that leaks does not
  leak the tokens. The rest of the entry is the client's routing policy: defaults and caps
  (`hubhop.core.routing_config.parse_client_policy`), the listener's where it says nothing.
  hubhop.core.config reads the entries, as it reads every section.
- A request presents its token as `Authorization: Bearer TOKEN`. Its SHA-256 is compared with
  every configured digest in constant time (hmac.compare_digest), and every entry is compared,
  so the time taken says nothing about which entry, or how much of one, matched.
- No configured tokens: nobody is identified and `Authorization` is none of hubhop's business
  (it may be meant for the backend). With tokens configured, the header is hubhop's: a
  malformed or unknown token is refused (401), never taken as anonymous, so a client with a
  wrong token notices; a request with none is anonymous, which `[routing] anonymous` allows
  (with the listener's policy) or refuses.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

from hubhop.core.routing_config import RoutingConfig

SHA256_HEX = re.compile(r"[0-9a-f]{64}")
TOKEN_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
# Longer than any token an operator generates (a 256-bit random token is 43 to 64 characters),
# short enough that hashing what a stranger sends costs nothing.
MAX_TOKEN_CHARS = 512


@dataclass(frozen=True)
class ClientToken:
    name: str
    digest: bytes  # SHA-256 of the bearer token
    routing: RoutingConfig  # this client's defaults and caps


class TokenError(Exception):
    """The request's Authorization header does not identify a configured client."""


def token_digest(token: str) -> str:
    """The hex SHA-256 an operator writes into `sha256` for `token`."""
    return hashlib.sha256(token.encode()).hexdigest()


def identify(tokens: tuple[ClientToken, ...], authorization: str | None) -> ClientToken | None:
    """The client `authorization` names; None for no header. TokenError when it names none."""
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise TokenError("Authorization must be 'Bearer <token>'")
    if len(token) > MAX_TOKEN_CHARS:
        raise TokenError("the bearer token is not one this node knows")
    digest = hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
    found = None
    for candidate in tokens:  # every entry, matched or not: the time says nothing
        if hmac.compare_digest(candidate.digest, digest) and found is None:
            found = candidate
    if found is None:
        raise TokenError("the bearer token is not one this node knows")
    return found
