"""The Celery app of tests/test_celery.py: the Spot and steps of tests/worker_steps.py, a
bridge to the broker named by HOKURO_TEST_BROKER (RabbitMQ or Redis), ``chunksize`` from
HOKURO_TEST_CHUNKSIZE. Celery workers load it (``celery -A celery_steps worker``)."""

from __future__ import annotations

import os

from celery import Celery

from hokuro.integrations.celery import CeleryBridge
from worker_steps import spot

app = Celery("hokuro_tests", broker=os.environ["HOKURO_TEST_BROKER"])
app.conf.broker_connection_retry_on_startup = True
app.conf.broker_transport_options = {"visibility_timeout": 5}  # Redis: redeliver after 5 s
bridge = CeleryBridge(app, spot, scopes=["default"],
                      chunksize=int(os.environ.get("HOKURO_TEST_CHUNKSIZE", "1")),
                      concurrency=4)
