"""The Celery integration with real Celery worker processes: jobs sent to a queue per scope
and executed through the run engine's executor, on RabbitMQ and Redis; a Celery worker
killed mid-job (late acknowledgement + the job lease: one more execution, never lost,
never two recorded results); chunking."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import pytest

from conftest import _missing
from test_workers import SRC, TESTS, Served

RABBITMQ = "amqp://guest:guest@127.0.0.1:5672//"
REDIS = os.environ.get("HOKURO_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _up(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


class CeleryServed(Served):
    def __init__(self, home, broker: str, chunksize: int = 1) -> None:
        super().__init__(home, "", lease=60)
        self.env.update(HOKURO_TEST_BROKER=broker, HOKURO_TEST_CHUNKSIZE=str(chunksize))
        os.environ.update(HOKURO_TEST_BROKER=broker, HOKURO_TEST_CHUNKSIZE=str(chunksize))
        sys.modules.pop("celery_steps", None)
        import celery_steps

        self.celery = celery_steps
        self.bridge = celery_steps.bridge
        self.celery.app.control.purge()  # what earlier tests left in the queue

    def celery_worker(self, **env: str) -> subprocess.Popen:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "celery_steps", "worker", "-Q",
             "hokuro.default", "-c", "2", "--pool", "prefork", "--without-gossip",
             "--without-mingle", "--without-heartbeat", "-l", "warning"],
            cwd=self.home, env={**self.env, "PYTHONPATH": os.pathsep.join([str(SRC),
                                                                          str(TESTS)]),
                                **env},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True)
        self.processes.append(process)
        return process

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        self.celery.app.control.purge()
        self.celery.app.close()
        sys.modules.pop("celery_steps", None)
        super().stop()


@pytest.fixture
def rabbit(workspace):
    if not _up("127.0.0.1", 5672):
        _missing("RabbitMQ", "nothing listens on 127.0.0.1:5672 (.ci/run starts it)")
    served = CeleryServed(workspace, RABBITMQ)
    yield served
    served.stop()


@pytest.fixture
def redis_broker(workspace):
    if not _up("127.0.0.1", 6379):
        _missing("Redis", "nothing listens on 127.0.0.1:6379")
    served = CeleryServed(workspace, REDIS, chunksize=3)
    yield served
    served.stop()


def test_message_priorities_keep_hokuro_order_on_both_brokers():
    from hokuro.integrations.celery import message_priority

    assert message_priority(0, "amqp") == 5 and message_priority(3, "amqp") == 8
    assert message_priority(100, "amqp") == 9 and message_priority(-100, "amqp") == 0
    assert message_priority(3, "redis") == 1 and message_priority(-3, "redis") == 7


@pytest.mark.slow
def test_celery_workers_execute_a_pipeline_and_a_killed_one_loses_nothing(rabbit):
    steps = rabbit.steps
    run = rabbit.spot.submit(steps.doubled, over=range(8), name="celery")
    first = rabbit.celery_worker()
    assert rabbit.bridge.dispatch(stop_when_idle=True, idle=0.2) == 16
    assert run.refresh().status == "done"
    assert run.results() == [x * 2 + 1 for x in range(8)]
    executed = sorted((e[0], e[1]) for e in rabbit.executions())
    assert executed == sorted([("double", str(x)) for x in range(8)]
                              + [("inc", str(x * 2)) for x in range(8)])
    # Killed mid-job: the message comes back, the next worker takes the job from the dead
    # owner and runs it once more; one result is recorded.
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    slow = rabbit.spot.submit(steps.slow, over=[9], name="killed")
    doomed = rabbit.celery_worker(HOKURO_TEST_SLOW="60")
    assert rabbit.bridge.dispatch_once() == 1
    started_by = rabbit.wait_for("started-9")
    (rabbit.home / "started-9").unlink()
    os.killpg(doomed.pid, signal.SIGKILL)
    doomed.wait()
    survivor = rabbit.celery_worker(HOKURO_TEST_SLOW="0")
    assert slow.wait(timeout=60).status == "done", survivor.stdout
    (result,) = slow.results()
    finisher = rabbit.wait_for("started-9")
    assert result == f"9 by {finisher}" and finisher != started_by
    assert [e[2] for e in rabbit.executions("slow")] == [started_by, finisher]
    (job,) = rabbit.spot.ledger.find_jobs(slow.id)
    assert job.status == "done" and job.attempts == 2 and f"|{finisher}|" in job.owner


@pytest.mark.slow
def test_celery_on_redis_with_chunks_of_three(redis_broker):
    steps = redis_broker.steps
    run = redis_broker.spot.submit(steps.double, over=range(7), name="redis")
    sent: list[int] = []
    original = redis_broker.bridge.task.apply_async

    def counting(*args, **kwargs):
        sent.append(len(kwargs["args"][1]))
        return original(*args, **kwargs)

    redis_broker.bridge.task.apply_async = counting
    redis_broker.celery_worker()
    redis_broker.bridge.dispatch(stop_when_idle=True, idle=0.2)
    assert run.refresh().status == "done" and run.results() == [x * 2 for x in range(7)]
    assert sorted(sent) == [1, 3, 3]
    assert sorted(int(e[1]) for e in redis_broker.executions("double")) == list(range(7))
