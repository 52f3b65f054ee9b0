"""python -m service --model-repository DIR --host H --port P: every flag is also MODELSERVE_*."""

import logging
import os
import sys

import uvicorn
from pydantic_settings import CliApp

from service.settings import Settings


def main(argv: list[str] | None = None) -> None:
    settings = CliApp.run(Settings, cli_args=sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Worker processes build their app from the environment, so hand the settings down there.
    os.environ.update(settings.to_env())
    uvicorn.run(
        "service.app:create_app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
        timeout_graceful_shutdown=30,
    )


if __name__ == "__main__":
    main()
