"""API keys as bearer tokens on HTTP: the rules are service.access's, the classes of paths
service.middleware.routes'."""

from service.access import ADMIN_KEY_NEEDED, CONTROL_DISABLED, KeyRules
from service.middleware.reply import header
from service.middleware.routes import route_class
from service.protocol.errors import send_error

__all__ = ["ADMIN_KEY_NEEDED", "CONTROL_DISABLED", "AuthMiddleware"]


class AuthMiddleware:
    def __init__(self, app, rules: KeyRules):
        self.app = app
        self.rules = rules

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            path = scope["path"]
            root = scope.get("root_path")
            if root and path.startswith(root):
                path = path[len(root):]
            error = self.rules.refusal(route_class(path), header(scope, b"authorization"))
            if error is not None:
                await send_error(send, error)
                return
        await self.app(scope, receive, send)
