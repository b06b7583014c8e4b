"""Authorization headers for a FHIR server: a static bearer token, or SMART Backend Services.

SMART Backend Services (client credentials with a signed JWT client assertion): the access token is
cached per token endpoint, client and scope until shortly before it expires, so a pull of many pages
(and pulls running back to back in one worker) ask the token endpoint once.
"""

import json
import threading
import time
import uuid
from typing import Any
from urllib.parse import urlencode

import jwt

from patients.pull.client import Authorization, HttpTransport
from patients.pull.errors import PullRejected

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# SMART allows at most five minutes between the assertion's issue and expiry.
ASSERTION_LIFETIME_SECONDS = 300
# Renew this long before the announced expiry (or at half-life, for tokens shorter than twice this),
# so a token never expires in the middle of a page request.
EXPIRY_MARGIN_SECONDS = 60.0

_tokens: dict[tuple[str, str, str], tuple[str, float]] = {}
_tokens_lock = threading.Lock()


def token_cache_clear() -> None:
    with _tokens_lock:
        _tokens.clear()


class BearerAuthorization:
    renewable = False

    def __init__(self, *, token: str) -> None:
        self.token = token

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def forget(self) -> None:
        return None


class SmartBackendAuthorization:
    renewable = True

    def __init__(self, *, settings: dict[str, Any], transport: HttpTransport) -> None:
        self.settings = settings
        self.transport = transport
        self.key = (settings["token_url"], settings["client_id"], settings["scope"])

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token()}"}

    def forget(self) -> None:
        with _tokens_lock:
            _tokens.pop(self.key, None)

    def access_token(self) -> str:
        with _tokens_lock:
            cached = _tokens.get(self.key)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        token, lifetime = self._request_token()
        margin = min(EXPIRY_MARGIN_SECONDS, lifetime / 2)
        with _tokens_lock:
            _tokens[self.key] = (token, time.monotonic() + lifetime - margin)
        return token

    def client_assertion(self) -> str:
        now = int(time.time())
        claims = {
            "iss": self.settings["client_id"],
            "sub": self.settings["client_id"],
            "aud": self.settings["token_url"],
            "jti": str(uuid.uuid4()),
            "iat": now,
            "exp": now + ASSERTION_LIFETIME_SECONDS,
        }
        try:
            return jwt.encode(
                claims,
                self.settings["private_key_pem"],
                algorithm=self.settings["algorithm"],
                headers={"kid": self.settings["key_id"], "typ": "JWT"},
            )
        except (ValueError, TypeError, jwt.PyJWTError) as error:
            # The message of a key-loading error could quote key material: name the problem only.
            raise PullRejected(
                f"cannot sign the client assertion with fhir_pull.auth.private_key_pem "
                f"({self.settings['algorithm']}): {type(error).__name__}"
            ) from None

    def _request_token(self) -> tuple[str, float]:
        form = urlencode(
            {
                "grant_type": "client_credentials",
                "scope": self.settings["scope"],
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": self.client_assertion(),
            }
        ).encode()
        response = self.transport.send(
            "POST",
            self.settings["token_url"],
            headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
            body=form,
        )
        try:
            answer = json.loads(response.body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise PullRejected("the token endpoint did not answer JSON") from None
        token = answer.get("access_token") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token:
            raise PullRejected("the token endpoint answered without an access_token")
        expires_in = answer.get("expires_in", ASSERTION_LIFETIME_SECONDS)
        lifetime = float(expires_in) if isinstance(expires_in, int | float) and expires_in > 0 else 0.0
        return token, lifetime


def authorization_build(*, auth: dict[str, Any], transport: HttpTransport) -> Authorization:
    if auth["type"] == "bearer":
        return BearerAuthorization(token=auth["token"])
    return SmartBackendAuthorization(settings=auth, transport=transport)
