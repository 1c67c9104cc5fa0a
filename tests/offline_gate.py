"""A gate server process for the issue 18 tests: the real app and runtime, on the database in
FACEGATE_DB_URL, with the small fake face pipeline (``offline_support.GateFakePipeline``)."""

from __future__ import annotations

import sys

import uvicorn
from offline_support import GateFakePipeline

from facegate.api import create_app
from facegate.api.observability import configure_logging
from facegate.config import Settings

if __name__ == "__main__":
    port = int(sys.argv[1])
    settings = Settings()
    configure_logging(settings.log_json)
    app = create_app(settings, pipeline=GateFakePipeline(), warm_up=True)
    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
