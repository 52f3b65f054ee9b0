"""API keys as bearer tokens: inference keys for the model routes, admin keys for model control.

Deny by default: with inference keys set, every route needs a key except the open ones below
(health for probes, server metadata, docs, the playground page and its assets), so a route
added later is protected without anyone remembering to list it. Keys are compared in constant time and never
logged; 401 says "who are you", 403 says "you may not".
"""

import hmac

from service.errors import Forbidden, Unauthorized
from service.middleware.reply import header, send_error

OPEN_PATHS = frozenset(
    {"/", "/v2", "/v2/health/live", "/v2/health/ready", "/docs", "/docs/oauth2-redirect",
     "/redoc", "/openapi.json", "/favicon.ico"}
)
OPEN_PREFIX = "/web/"  # the playground's scripts and styles: code, no data
METRICS_PATH = "/metrics"
REPOSITORY_PREFIX = "/v2/repository"         # Triton's model repository extension: admin
CONTROL_PREFIX = "/v2/repository/models/"    # load / unload: off unless admin keys or allowed

ADMIN_KEY_NEEDED = "this key may not use model control; an admin key is needed"
CONTROL_DISABLED = (
    "model control is disabled: set MODELSERVE_ADMIN_KEYS, or "
    "MODELSERVE_ALLOW_MODEL_CONTROL_WITHOUT_ADMIN_KEYS=true on a trusted network"
)


class AuthMiddleware:
    def __init__(
        self,
        app,
        api_keys: list[str],
        admin_keys: list[str],
        allow_control_without_admin_keys: bool = False,
        metrics_require_key: bool = False,
    ):
        self.app = app
        self.api_keys = tuple(k.encode() for k in api_keys)
        self.admin_keys = tuple(k.encode() for k in admin_keys)
        self.allow_control = allow_control_without_admin_keys
        self.metrics_require_key = metrics_require_key

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            error = self._refusal(scope)
            if error is not None:
                await send_error(send, error)
                return
        await self.app(scope, receive, send)

    def _refusal(self, scope) -> Exception | None:
        """None when the request may pass, else the error to answer with."""
        path = scope["path"]
        root = scope.get("root_path")
        if root and path.startswith(root):
            path = path[len(root):]
        if path in OPEN_PATHS or path.startswith(OPEN_PREFIX):
            return None
        if path == METRICS_PATH and not self.metrics_require_key:
            return None
        if path.startswith(REPOSITORY_PREFIX):
            if self.admin_keys:
                return self._check(scope, self.admin_keys, insufficient=self.api_keys)
            if path.startswith(CONTROL_PREFIX) and not self.allow_control:
                return Forbidden(CONTROL_DISABLED)
        if not self.api_keys and not (path == METRICS_PATH and self.admin_keys):
            return None
        return self._check(scope, self.api_keys + self.admin_keys)

    @staticmethod
    def _check(scope, allowed: tuple[bytes, ...], insufficient: tuple[bytes, ...] = ()):
        token = _bearer_token(scope)
        if token is None:
            return Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
        if _matches(token, allowed):
            return None
        if _matches(token, insufficient):
            return Forbidden(ADMIN_KEY_NEEDED)
        return Unauthorized("invalid API key")


def _bearer_token(scope) -> bytes | None:
    value = header(scope, b"authorization")
    if value is None:
        return None
    scheme, _, token = value.partition(b" ")
    token = token.strip()
    return token if scheme.lower() == b"bearer" and token else None


def _matches(token: bytes, keys: tuple[bytes, ...]) -> bool:
    # Compare with every key, without stopping at a match, so timing tells nothing of which.
    found = False
    for key in keys:
        found |= hmac.compare_digest(token, key)
    return found
