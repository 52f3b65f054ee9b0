"""Every gRPC test runs against both transports (--grpc-transport grpcio and asyncio): the
servers a test starts read MODELSERVE_GRPC_TRANSPORT from the environment this sets.

MODELSERVE_TEST_GRPC_TRANSPORTS (comma separated) narrows the list, to run one transport alone.
"""

import os

import pytest

TRANSPORTS = os.environ.get("MODELSERVE_TEST_GRPC_TRANSPORTS", "grpcio,asyncio").split(",")


@pytest.fixture(scope="module", params=TRANSPORTS, autouse=True)
def grpc_transport(request):
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("MODELSERVE_GRPC_TRANSPORT", request.param)
    yield request.param
    monkeypatch.undo()


@pytest.fixture(scope="module")
def module_server(grpc_transport, module_server):
    """The parent's, once per transport (module-scoped servers follow the parameter)."""
    return module_server
