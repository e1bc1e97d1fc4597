"""Plans: what a run executes, built the way a script reads, and the jobs it makes. Pure.

::

    plan = Plan("reports")
    x = plan.input()                    # the item, when the plan runs over inputs
    r = plan.call(request, x)           # a node: returns a Value (a handle, not a result)
    s = plan.call(status | download, r) # a pipe expands to a chain
    plan.call(merge, s, x)              # a join: runs once every parent is done, with their
                                        # results in argument order
    plan.each(list_files, parse)        # a fan-out: parse(f) for f in list_files()

Node ids name each node by its position and step (``"0.request"``, ``"1.status"``), or by
``id=`` when a plan should keep its job ids while being edited. Job ids are paths: a node of
item ``i`` is ``"<i>/<node id>"``; the body of a fan-out over element ``k`` of a source job is
``"<source job id>/<k>/<node id>"``. They are stable, so a resumed run never makes a job twice.

Steps are known only as objects with ``.name``, ``.fn_path`` and ``.options`` (marked
functions); nothing here runs a step or does I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import PlanError
from .jobs import JobSpec
from .plan_nodes import INPUT, JobTemplate, Node, compile_plan, describe_nodes, job_spec
from .steps import (
    Pipe,
    Step,
    check_arity,
    check_body_function,
    check_priority,
    check_scope,
    is_step,
    named,
    not_a_step,
    short_name,
)

__all__ = ["INPUT", "Node", "Pipe", "Plan", "Step", "Value"]

def _refuse(obj: Any, where: str) -> PlanError:
    if isinstance(obj, Plan):
        return PlanError(f"{where}: a Plan cannot be a step of another plan; build its calls "
                         "into this plan, or run it on its own")
    if isinstance(obj, Value):
        return PlanError(f"{where}: got a Value where a step belongs; the step comes first, "
                         "then its parents: plan.call(step, value)")
    return not_a_step(obj, where)


_NODE_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_DESCRIPTION_VERSION = 1


@dataclass(frozen=True, slots=True, eq=False)
class Value:
    """A handle on a node of a plan: what ``plan.call`` returns and later calls take as
    parents. It holds no result; the run computes one per job."""

    plan: Plan = field(repr=False)
    node: str

    def __repr__(self) -> str:
        return f"<Value {self.node}>"


class Plan:
    """What a run executes: calls of steps, joins and fan-outs (see the module docs)."""

    def __init__(self, name: str | None = None) -> None:
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise PlanError(f"a plan's name is non-empty text, not {name!r}")
        self._name = name
        self._within: str | None = None  # the fan-out whose body this (sub-)plan builds
        self._root = self
        self._nodes: dict[str, Node] = {}  # every node of every level, shared by sub-plans
        self._count = [0]  # positions, shared by sub-plans so every node id is unique
        self._order: list[str] = []  # this level's node ids, in order of creation
        self._uses_input = False
        self._input = Value(self, INPUT)
        self._templates: dict[str | None, list[JobTemplate]] | None = None

    # -- building -------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The name given, else the steps' names (a run's default name)."""
        if self._name is not None:
            return self._name
        names = dict.fromkeys(node.step.name for node in self._nodes.values()
                              if node.kind == "call")
        return ", ".join(names) or "empty plan"

    def input(self) -> Value:
        """The item, when the plan runs over inputs (in a fan-out body: its element)."""
        return self._input

    def call(self, step: Any, *parents: Value, scope: str | None = None,
             priority: int | None = None, id: str | None = None) -> Value:
        """A node calling ``step`` with the results of ``parents`` (Values), in order.

        A pipe expands to a chain (its first step gets the parents). ``scope`` and
        ``priority`` override the step's options for this node; ``id`` names the node (it
        keeps job ids stable when other nodes are added or removed).
        """
        where = f"plan.call({getattr(step, 'name', step)!s})"
        scope, priority = check_scope(scope, where), check_priority(priority, where)
        if isinstance(step, Pipe):
            if id is not None:
                raise PlanError(f"{where}: id= names one node and a pipe makes one per step; "
                                "call its steps one by one to name them")
            values: tuple[Value, ...] = parents
            for member in step:
                values = (self.call(member, *values, scope=scope, priority=priority),)
            return values[0]
        if not is_step(step):
            raise _refuse(step, "plan.call")
        parent_ids = tuple(self._parent_id(p, where) for p in parents)
        check_arity(step, len(parent_ids), where)
        node = Node(self._new_id(short_name(step.name), id, where), "call", step=step,
                    parents=parent_ids, scope=scope, priority=priority, within=self._within)
        self._add(node)
        return Value(self, node.id)

    def each(self, source: Any, body: Any, *, id: str | None = None) -> Value:
        """A fan-out: ``for x in source(): body(x)``, one body per element of the source's
        result (a list), each element an input of its own body chain.

        ``source``: a Value, or a step (or pipe) called with no argument. ``body``: a step,
        a pipe, or a function ``body(sub_plan, x)`` that builds the body on the element
        ``x``. The returned Value names the fan-out; it cannot be a parent (yet): a join
        that waits for every body is not supported.
        """
        where = "plan.each"
        nodes, known, length = self._root._nodes, set(self._root._nodes), len(self._order)
        try:
            each = self._each(source, body, id, where)
        except BaseException:
            for node_id in set(nodes) - known:  # a fan-out that failed to build leaves
                del nodes[node_id]              # no trace
            del self._order[length:]
            self._root._templates = None
            raise
        source_node = nodes.get(each.source or "")
        if source_node is not None:
            source_node.fanouts.append(each.id)
        return Value(self, each.id)

    def _each(self, source: Any, body: Any, id: str | None, where: str) -> Node:
        if isinstance(source, Value):
            source_id = self._parent_id(source, where)
            if source_id == INPUT:
                raise PlanError(f"{where}: the source of a fan-out is a step's result, not "
                                "the input; to process the elements of the input, run the "
                                "plan over them (spot.run(plan, over=items))")
        elif isinstance(source, Pipe) or is_step(source):
            source_id = self.call(source).node
        else:
            raise _refuse(source, f"{where} (its source)")
        each = Node(self._new_id("each", id, where), "each", source=source_id,
                    within=self._within)
        self._add(each)
        sub = Plan._body(self, each.id)
        if isinstance(body, Pipe) or is_step(body):
            sub.call(body, sub.input())
        elif callable(body) and not isinstance(body, Plan | Value):
            check_body_function(body)
            body(sub, sub.input())
        else:
            raise _refuse(body, f"{where} (its body)")
        if not sub._order:
            raise PlanError(f"{where}: the body {named(body)} added no step; it must call "
                            "steps on its element: sub_plan.call(step, x)")
        if not sub._uses_input:
            raise PlanError(f"{where}: the body {named(body)} never uses its element x; "
                            "pass it to a step: sub_plan.call(step, x)")
        each.body = tuple(sub._order)
        return each

    @classmethod
    def _body(cls, parent: Plan, each_id: str) -> Plan:
        sub = cls.__new__(cls)
        sub._name = None
        sub._within = each_id
        sub._root = parent._root
        sub._nodes = parent._root._nodes
        sub._count = parent._count
        sub._order = []
        sub._uses_input = False
        sub._input = Value(sub, INPUT)
        sub._templates = None
        return sub

    @classmethod
    def for_map(cls, step: Any) -> Plan:
        """The plan of ``spot.map(step, items)``: ``step(item)`` for each item (a pipe:
        the chain)."""
        if isinstance(step, Pipe):
            return cls.for_pipe(step)
        if not is_step(step):
            raise _refuse(step, "spot.map")
        plan = cls(step.name)
        plan.call(step, plan.input())
        return plan

    @classmethod
    def for_pipe(cls, pipe: Pipe) -> Plan:
        """The plan of ``spot.run(pipe, over=items)``: the chain on each item."""
        if not isinstance(pipe, Pipe):
            pipe = Pipe((pipe,))
        plan = cls(pipe.name)
        plan.call(pipe, plan.input())
        return plan

    def _parent_id(self, parent: Any, where: str) -> str:
        if not isinstance(parent, Value):
            raise PlanError(
                f"{where}: parents are Values (from plan.call, plan.input or a body's "
                f"element), not {type(parent).__name__}; a constant belongs in the step "
                "itself or in the run's inputs")
        if parent.plan is not self:
            if getattr(parent.plan, "_root", None) is self._root:
                raise PlanError(
                    f"{where}: {parent.node} belongs to another level of this plan; a "
                    "fan-out body can use only its element and the values made inside it "
                    "(let the source return what the body needs, e.g. pairs)")
            raise PlanError(f"{where}: {parent.node} is a Value of another plan; build "
                            "every call of a run in one plan")
        if parent.node == INPUT:
            self._uses_input = True
            return INPUT
        node = self._root._nodes.get(parent.node)
        if node is not None and node.kind == "each":
            raise PlanError(
                f"{where}: the result of plan.each ({node.id}) cannot be a parent: a join "
                "that waits for every body of a fan-out is not supported yet. Let the body's "
                "last step save what the join needs, and join in a later run.")
        return parent.node  # an unknown node (a hand-made Value) is reported by check()

    def _new_id(self, short: str, given: str | None, where: str) -> str:
        position = self._count[0]
        self._count[0] += 1
        if given is None:
            return f"{position}.{short}"
        if not isinstance(given, str) or not _NODE_ID.fullmatch(given) or given == INPUT:
            raise PlanError(f"{where}: id={given!r} is not a node id: use letters, digits, "
                            "'_', '.' and '-', starting with a letter or '_' (not 'input')")
        if given in self._root._nodes:
            raise PlanError(f"{where}: a node {given!r} is already in this plan; node ids "
                            "must be unique")
        return given

    def _add(self, node: Node) -> None:
        self._root._nodes[node.id] = node
        self._order.append(node.id)
        self._root._templates = None

    # -- reading --------------------------------------------------------------------------
    def node(self, node_id: str) -> Node:
        """The node of a job (``job.node``): its step, parents and fan-outs."""
        try:
            return self._root._nodes[node_id]
        except KeyError:
            raise PlanError(f"no node {node_id!r} in plan {self._root.name!r}; the run was "
                            "made by another version of the plan") from None

    def steps(self) -> dict[str, Any]:
        """Every step of the plan (fan-out bodies too), by name."""
        return {node.step.name: node.step for node in self._root._nodes.values()
                if node.kind == "call"}

    @property
    def uses_input(self) -> bool:
        """True when some node takes the input (the plan runs over inputs)."""
        return self._uses_input

    def __repr__(self) -> str:
        return f"<Plan {self.name!r}: {len(self._root._nodes)} nodes>"

    # -- checking -------------------------------------------------------------------------
    def check(self) -> None:
        """Refuse, before anything runs, a plan that cannot run: a node whose step is not a
        step, a parent that is not a node of its level, a cycle, a duplicate node id, a
        fan-out without a body that uses its element. Raises :class:`PlanError`."""
        self._compiled()

    def _compiled(self) -> dict[str | None, list[JobTemplate]]:
        root = self._root
        if root._templates is None:
            root._templates, root._uses_input = compile_plan(root.name, root._nodes,
                                                             root._order)
        return root._templates

    # -- jobs -----------------------------------------------------------------------------
    def root_jobs(self, item_index: int | None, item: bytes | None, *,
                  scope: str = "default", priority: int = 0) -> list[JobSpec]:
        """The jobs of one input item (``item_index`` None: the plan runs once, without
        input). Job ids are ``"<item_index>/<node id>"`` (or the node id alone). ``scope``
        and ``priority``: the run's defaults, for nodes whose call and step set none."""
        root = self._root
        templates = root._compiled()[None]
        if item_index is None:
            if root._uses_input:
                raise PlanError(f"plan {root.name!r} takes an input (plan.input()); run it "
                                "over inputs: spot.run(plan, over=items)")
            prefix = ""
        else:
            if isinstance(item_index, bool) or not isinstance(item_index, int) \
                    or item_index < 0:
                raise PlanError(f"an item index is a whole number >= 0, not {item_index!r}")
            if not root._uses_input:
                raise PlanError(f"plan {root.name!r} never uses plan.input(), so every item "
                                "would run the same calls; pass the input to a step, or run "
                                "the plan once without inputs")
            prefix = f"{item_index}/"
        return [job_spec(t, prefix, item, scope, priority) for t in templates]

    def root_maker(self, *, scope: str = "default", priority: int = 0
                   ) -> Callable[[int, bytes], list[JobSpec]]:
        """``maker(item_index, item)`` == ``root_jobs(item_index, item, scope=scope,
        priority=priority)`` for a plan over inputs, with the plan compiled and checked once:
        a run makes the jobs of thousands of items in a row."""
        root = self._root
        if not root._uses_input:
            return lambda index, item: self.root_jobs(index, item, scope=scope,
                                                      priority=priority)
        made = [(t.node, t.step, t.parents, t.uses_input,
                 scope if t.scope is None else t.scope,
                 priority if t.priority is None else t.priority)
                for t in root._compiled()[None]]

        def maker(index: int, item: bytes) -> list[JobSpec]:
            if type(index) is not int or index < 0:  # refused, saying why
                return self.root_jobs(index, item, scope=scope, priority=priority)
            prefix = f"{index}/"
            return [JobSpec(prefix + node, node, step,
                            tuple(prefix + p for p in parents) if parents else (),
                            item if uses_input else None, job_scope, job_priority)
                    for node, step, parents, uses_input, job_scope, job_priority in made]

        return maker

    def body_jobs(self, each_node_id: str, source_job_id: str, elements: Sequence[bytes], *,
                  scope: str = "default", priority: int = 0) -> list[JobSpec]:
        """The jobs of a fan-out once its source job is done: one body per element (the
        encoded elements of the source's result, in order), with job ids
        ``"<source job id>/<k>/<node id>"``. Inserted with the source's completion."""
        each = self.node(each_node_id)
        if each.kind != "each":
            raise PlanError(f"{each_node_id} is not a fan-out (plan.each) of this plan")
        if source_job_id.rsplit("/", 1)[-1] != each.source:
            raise PlanError(f"job {source_job_id!r} is not a job of {each.source}, the "
                            f"source of fan-out {each_node_id}")
        templates = self._compiled()[each_node_id]
        specs: list[JobSpec] = []
        for k, element in enumerate(elements):
            prefix = f"{source_job_id}/{k}/"
            specs.extend(job_spec(t, prefix, element, scope, priority) for t in templates)
        return specs

    # -- description ----------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """The plan as plain data (msgpack-able): kept in the run record, read by ``hokuro
        run show``, and enough to rebuild the plan where the steps can be imported
        (:meth:`from_description`)."""
        root = self._root
        root.check()
        return {"format": _DESCRIPTION_VERSION, "name": root.name,
                "input": root._uses_input, "nodes": describe_nodes(root._nodes, root._order)}

    @classmethod
    def from_description(cls, description: Mapping[str, Any],
                         resolve: Callable[[str, str], Any]) -> Plan:
        """Rebuild a described plan; ``resolve(step_name, fn_path)`` returns each step
        (importing it is the caller's business). Node ids, hence job ids, are kept."""
        try:
            if description["format"] != _DESCRIPTION_VERSION:
                raise PlanError(f"plan description format {description['format']!r} is not "
                                f"{_DESCRIPTION_VERSION}; a newer hokuro wrote it: upgrade")
            plan = cls(description["name"])
            plan._load(description["nodes"], resolve)
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, PlanError):
                raise
            raise PlanError(f"the plan description is damaged ({type(exc).__name__}: {exc}); "
                            "it was not written by Plan.describe()") from None
        plan.check()
        return plan

    def _load(self, nodes: Iterable[Mapping[str, Any]],
              resolve: Callable[[str, str], Any]) -> None:
        for d in nodes:
            self._count[0] += 1
            if d["kind"] == "call":
                parents = tuple(d["parents"])
                node = Node(d["id"], "call", step=resolve(d["step"], d["fn_path"]),
                            parents=parents, scope=check_scope(d["scope"], d["id"]),
                            priority=check_priority(d["priority"], d["id"]),
                            within=self._within)
                self._uses_input |= INPUT in parents
                self._add(node)
            elif d["kind"] == "each":
                node = Node(d["id"], "each", source=d["source"], within=self._within)
                self._add(node)
                sub = Plan._body(self, node.id)
                sub._load(d["nodes"], resolve)
                node.body = tuple(sub._order)
                source = self._root._nodes.get(node.source or "")
                if source is not None:
                    source.fanouts.append(node.id)
            else:
                raise PlanError(f"node {d['id']!r} has an unknown kind {d['kind']!r}")

