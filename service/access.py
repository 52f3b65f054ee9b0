"""Who may call what: route classes and the API-key rules, for every transport.

Deny by default: with inference keys set, every call needs a key except the OPEN ones (health
for probes, server metadata, docs, the playground), so a route added later is protected without
anyone remembering to list it. Admin keys guard the model repository; load and unload are off
unless admin keys are set or the operator allowed them on a trusted network. Keys are compared
in constant time and never logged; 401 says "who are you", 403 says "you may not".
"""

import enum
import hmac

from service.errors import Forbidden, ModelControlDisabled, ServiceError, Unauthorized


class RouteClass(enum.Enum):
    OPEN = "open"              # health, server metadata, docs, the playground
    METRICS = "metrics"        # /metrics: open unless metrics_require_key
    MODEL = "model"            # inference, model metadata, statistics, cards...
    REPOSITORY = "repository"  # the repository index: admin
    CONTROL = "control"        # load / unload: admin, and off unless allowed


ADMIN_KEY_NEEDED = "this key may not use model control; an admin key is needed"
CONTROL_DISABLED = (
    "model control is disabled: set MODELSERVE_ADMIN_KEYS, or "
    "MODELSERVE_ALLOW_MODEL_CONTROL_WITHOUT_ADMIN_KEYS=true on a trusted network"
)


class KeyRules:
    def __init__(
        self,
        api_keys: list[str],
        admin_keys: list[str],
        allow_control_without_admin_keys: bool = False,
        metrics_require_key: bool = False,
    ):
        self.api_keys = tuple(k.encode() for k in api_keys)
        self.admin_keys = tuple(k.encode() for k in admin_keys)
        self.allow_control = allow_control_without_admin_keys
        self.metrics_require_key = metrics_require_key

    @classmethod
    def from_settings(cls, settings) -> "KeyRules":
        return cls(
            [k.get_secret_value() for k in settings.api_keys],
            [k.get_secret_value() for k in settings.admin_keys],
            settings.allow_model_control_without_admin_keys,
            settings.metrics_require_key,
        )

    def refusal(self, route: RouteClass, authorization: bytes | None) -> ServiceError | None:
        """None when the call may pass, else the error to answer with. `authorization` is the
        Authorization header's (or metadata's) value."""
        if route is RouteClass.OPEN:
            return None
        if route is RouteClass.METRICS and not self.metrics_require_key:
            return None
        if route in (RouteClass.REPOSITORY, RouteClass.CONTROL):
            if self.admin_keys:
                return _check(authorization, self.admin_keys, insufficient=self.api_keys)
            if route is RouteClass.CONTROL and not self.allow_control:
                return ModelControlDisabled(CONTROL_DISABLED)
        if not self.api_keys and not (route is RouteClass.METRICS and self.admin_keys):
            return None
        return _check(authorization, self.api_keys + self.admin_keys)


def _check(authorization: bytes | None, allowed: tuple[bytes, ...], insufficient: tuple[bytes, ...] = ()):
    token = bearer_token(authorization)
    if token is None:
        return Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
    if _matches(token, allowed):
        return None
    if _matches(token, insufficient):
        return Forbidden(ADMIN_KEY_NEEDED)
    return Unauthorized("invalid API key")


def bearer_token(value: bytes | None) -> bytes | None:
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
