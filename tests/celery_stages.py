"""The Celery app of tests/test_stages.py's run_in_celery test: the stages of
tests/stage_defs.py, the Spot "stages" in HOKURO_TEST_STAGES_HOME, and a bridge for scope
"stages" on the broker named by HOKURO_TEST_BROKER. Celery workers load it (``celery -A
celery_stages worker -Q hokuro.stages``)."""

from __future__ import annotations

import os

from celery import Celery

import hokuro
import stage_defs  # noqa: F401  (registers the stages the chunks run)
from hokuro.integrations.celery import CeleryBridge

app = Celery("hokuro_stage_tests", broker=os.environ["HOKURO_TEST_BROKER"])
app.conf.broker_connection_retry_on_startup = True
spot = hokuro.Spot("stages", workspace=os.environ["HOKURO_TEST_STAGES_HOME"])
bridge = CeleryBridge(app, spot, scopes=["stages"], chunksize=1, concurrency=4)
