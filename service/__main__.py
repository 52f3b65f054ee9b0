"""python -m service --model-repository DIR --host H --port P: every flag is also MODELSERVE_*."""

import atexit
import logging.config
import os
import shutil
import sys
import tempfile

import uvicorn
from pydantic_settings import CliApp

from service import http_infer, logs
from service.settings import Settings


def main(argv: list[str] | None = None) -> None:
    settings = CliApp.run(Settings, cli_args=sys.argv[1:] if argv is None else argv)
    log_config = logs.config(settings.log_level)
    logging.config.dictConfig(log_config)
    # Worker processes build their app from the environment, so hand the settings down there.
    os.environ.update(settings.to_env())
    if settings.workers > 1:
        _share_metrics_between_workers()
    uvicorn.run(
        "service.app:create_app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
        log_config=log_config,  # JSON lines, in the workers too
        access_log=False,  # ours is RequestLogMiddleware's, with the request id and model
        timeout_graceful_shutdown=settings.shutdown_timeout_s,
        timeout_keep_alive=settings.keep_alive_timeout_s,
        http=http_infer.protocol(settings.request_head_timeout_s),
    )


def _share_metrics_between_workers() -> None:
    """prometheus-client's multiprocess mode: each worker writes its samples to files here."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        folder = tempfile.mkdtemp(prefix="modelserve-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
        atexit.register(shutil.rmtree, folder, ignore_errors=True)


if __name__ == "__main__":
    main()
