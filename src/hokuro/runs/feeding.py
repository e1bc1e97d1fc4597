"""Inputs read into a run in windows ahead of completion: each window's items become their
root jobs, keyed in one pass (a keyer per root step, worked out once), their tasks looked
up in one read, and jobs whose task is done already inserted done — never claimed, executed
or committed one by one (a rerun, a resume, work another run shared). The window is written
by the group committer while the next one is read, unless it holds jobs to claim.

:class:`Feeding` is a part of :class:`~hokuro.runs.executor.Executor`: it uses the
executor's run, plan, committer, tally and counters.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Callable
from typing import Any

from ..errors import RunCancelled
from ..model.jobs import JobSpec
from ..model.plan_nodes import INPUT
from .stepping import INPUT_REF
from .writer import Pending as Work

_UNKNOWN = object()  # a root node whose keyer is not worked out yet


class Feeding:
    """The executor's inputs: read in windows, their jobs inserted (done when reused)."""

    async def _feed(self) -> None:
        """Read a window of inputs and insert their jobs. Jobs whose task is done already
        (a rerun, a resume, work another run shared) go in done: their keys are computed
        in one pass, looked up in one read and inserted with the others (by the group
        committer, a statement per 1,000 jobs); they are never claimed, executed or
        committed one by one."""
        if self._inputs_done or self.items is None:
            return
        room = self._window_room()
        if room < self.window // 2 and self._inserted:
            return
        # The first window is no larger than the jobs claimed at once (or 1,000): the steps
        # start as soon as those are in, and the rest of the window is read while they run.
        want = max(room if self._inserted else min(room, max(self._ahead, 1000)), 1)
        window = list(itertools.islice(self.items, want))
        if len(window) < want:
            self._inputs_done = True
        specs: list[JobSpec] = []
        ready: list[tuple[JobSpec, str]] = []  # jobs whose task may be done already
        if window:
            self._window_jobs(window, specs, ready)
        if ready:
            await self._reuse_at_insert(ready)
        # The previous window's jobs are written (its failure raised here) before this
        # window's go: they were written while this one was being keyed and looked up.
        await self._inserted_before()
        first = not self._inserted
        if specs:
            last = window[-1][0]
            last = 0 if last is None else last
            self._inserted += last + 1 - self.run.cursor
            self.run.cursor = last + 1
        cursor, inputs_done = self.run.cursor, self._inputs_done

        def record_cursor() -> None:  # on the committer's thread, once the jobs are in
            self._serially(self.ledger.update_run, self.run.id, cursor=cursor,
                           inputs_done=inputs_done, updated_at=self.clock())

        done: asyncio.Future[Any] = self._loop.create_future()
        self.committer.submit(Work(inserts=[(self.run.id, specs)] if specs else [],
                                   then=record_cursor, done=self._settle_from_thread(done)))
        # A window is written while the loop goes on claiming the jobs in already (its end
        # wakes the loop: a claim that found nothing meanwhile is made again), and a window
        # of jobs that all went in done while the next window is read: waiting for it here
        # idled every slot for each window on PostgreSQL. The first window is waited for:
        # there is nothing else to claim.
        self._inserting = done
        if first and any(spec.task_key is None for spec in specs):
            await self._inserted_before()

    async def _inserted_before(self) -> None:
        """Wait until the last window handed to the committer is written (raise its
        failure)."""
        pending, self._inserting = self._inserting, None
        if pending is not None:
            result = await pending
            if isinstance(result, RunCancelled):  # cancelled from outside: stop here
                self.stop()
            elif isinstance(result, BaseException):
                raise result

    def _window_jobs(self, window: list[tuple[int | None, Any]], specs: list[JobSpec],
                     ready: list[tuple[JobSpec, str]]) -> None:
        """The jobs of ``window``'s items into ``specs``, and (job, task key) of each job
        that needs no parent and whose task can be known before it is claimed into
        ``ready``: one tight pass, the keying of each root node worked out once."""
        plan = self.plan
        encode, decode = self.spot.codec.encode, self.spot.codec.decode
        keyers = self._keyers
        make = plan.root_maker()
        for index, item in window:
            if index is None:  # a plan run once, without input
                jobs = plan.root_jobs(None, None)
                value = None
            else:
                data = encode(item, root=f"input {index}")
                jobs = make(index, data)
                # The step sees the input as the ledger gives it back (decoded), and so
                # does its key.
                value = decode(data)
            for spec in jobs:
                if spec.parents:
                    continue
                keyer = keyers.get(spec.node, _UNKNOWN)
                if keyer is _UNKNOWN:
                    keyer = keyers[spec.node] = self._root_keyer(spec.node)
                if keyer is None:
                    continue
                try:
                    key = keyer(value)
                except Exception:  # cannot be keyed: the job fails when it runs, saying why
                    continue
                ready.append((spec, key))
            specs.extend(jobs)

    def _root_keyer(self, node_id: str) -> Callable[[Any], str] | None:
        """The task key of node ``node_id``'s job for an item (its decoded input); None for
        a fan-out source (its value must be read, not reused at insert)."""
        node = self.plan.node(node_id)
        if node.fanouts:
            return None
        step = node.step
        make = getattr(step, "keyer", None)
        if make is not None:
            keyer = make()
        else:  # a step without keyer gives the key through its claim
            owner = self.owner

            def keyer(args: tuple[Any, ...]) -> str:
                return step.task_claim(args, owner, 0.0).key
        if node.parents == (INPUT,):
            return lambda value: keyer((value,))
        return lambda value: keyer(tuple(node.arguments(value, [])))

    async def _reuse_at_insert(self, ready: list[tuple[JobSpec, str]]) -> None:
        """Jobs whose task is done already are inserted done: no claim, no execution, no
        commit of their own. One read of the tasks, off the event loop; the rest are
        claimed and run as usual. Counted per node, once per window."""
        found = await self._off(self.ledger.reusable, [key for _, key in ready], self.clock())
        if len(self._root_keys) > 4 * self.window:
            self._root_keys.clear()  # jobs claimed elsewhere (workers): forget their keys
        reused: Counter[str] = Counter()
        saved = 0.0
        run_id, root_keys, result_node = self.run.id, self._root_keys, self._result_node
        for spec, key in ready:
            kept = found.get(key)
            if kept is None:
                root_keys[(run_id, spec.job_id)] = key
                continue
            passes_on, took = kept
            spec.task_key = key
            # A kept None passes the input on, as a step that returns None does.
            spec.output_key = INPUT_REF + spec.job_id if passes_on else key
            saved += max(0.0, took)
            reused[spec.node] += 1
            if spec.node == result_node and spec.job_id.count("/") == 1:
                self._finished_roots += 1
        self.tally.saved += saved
        for node_id, n in reused.items():
            self.tally.add(node_id, "reused", n)
            if self.observer is not None:
                self.observer(node_id, "reused", n)

    def _window_room(self) -> int:
        """Items that may be read now: the window less the items still open."""
        return self.window - (self._inserted - self._finished_roots)
