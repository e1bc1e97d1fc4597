"""The nodes of a plan, their checks, and the jobs and description they make. Pure.

A node is a call of a step (``kind="call"``) or a fan-out (``kind="each"``). Nodes live on
levels: the top level, and the body of each fan-out. A call's parents are nodes of its own
level, or :data:`INPUT` (the level's input: the item, or the body's element).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import PlanError
from .jobs import JobSpec
from .steps import is_step, not_a_step

#: The node id of a plan's input: the item of a run over inputs; in a fan-out body, the
#: element. Not a job: its value is the job's own ``input``.
INPUT = "input"


@dataclass(slots=True)
class Node:
    """One node: a call of a step (``kind="call"``) or a fan-out (``kind="each"``)."""

    id: str
    kind: str
    step: Any = None  # call: the step
    parents: tuple[str, ...] = ()  # call: node ids in argument order; INPUT is the input
    scope: str | None = None  # given at the call; None: the step's option, else the run's
    priority: int | None = None
    within: str | None = None  # the fan-out whose body holds this node (None: top level)
    source: str | None = None  # each: the node whose result's elements it fans out over
    body: tuple[str, ...] = ()  # each: its body's node ids, in order
    fanouts: list[str] = field(default_factory=list)  # call: fan-outs over its result

    @property
    def job_parents(self) -> tuple[str, ...]:
        """The parent nodes that are jobs (not the input), each once, in argument order:
        a job's ``parents`` are their jobs, in this order."""
        return tuple(dict.fromkeys(p for p in self.parents if p != INPUT))

    @property
    def uses_input(self) -> bool:
        return INPUT in self.parents

    def arguments(self, item: Any, outputs: Sequence[Any]) -> list[Any]:
        """The step's arguments: ``item`` (the decoded input) where the input is a parent,
        and ``outputs`` (the parents' values, in :attr:`job_parents` order) elsewhere."""
        by_node = dict(zip(self.job_parents, outputs, strict=True))
        return [item if p == INPUT else by_node[p] for p in self.parents]


@dataclass(slots=True)
class JobTemplate:
    """A call node reduced to what makes its jobs (precomputed once per plan)."""

    node: str
    step: str
    parents: tuple[str, ...]
    uses_input: bool
    scope: str | None
    priority: int | None


def describe_nodes(nodes: Mapping[str, Node], order: Iterable[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for node_id in order:
        node = nodes[node_id]
        if node.kind == "call":
            out.append({"id": node.id, "kind": "call", "step": node.step.name,
                        "fn_path": node.step.fn_path, "parents": list(node.parents),
                        "scope": node.scope, "priority": node.priority})
        else:
            out.append({"id": node.id, "kind": "each", "source": node.source,
                        "nodes": describe_nodes(nodes, node.body)})
    return out


def job_spec(t: JobTemplate, prefix: str, item: bytes | None, scope: str,
          priority: int) -> JobSpec:
    return JobSpec(
        job_id=prefix + t.node, node=t.node, step=t.step,
        parents=tuple(prefix + p for p in t.parents),
        input=item if t.uses_input else None,
        scope=scope if t.scope is None else t.scope,
        priority=priority if t.priority is None else t.priority,
    )


def compile_plan(name: str, nodes: Mapping[str, Node], order: Sequence[str]
                 ) -> tuple[dict[str | None, list[JobTemplate]], bool]:
    """Check a whole plan (``nodes``: every node of every level; ``order``: the top level's
    ids) and reduce each level to job templates in dependency order. Also says whether the
    top level takes the input."""
    levels: dict[str | None, list[str]] = {None: list(order)}
    for node in nodes.values():
        if node.kind == "each":
            levels[node.id] = list(node.body)
    listed = [node_id for ids in levels.values() for node_id in ids]
    seen: set[str] = set()
    for node_id in listed:
        if node_id in seen:
            raise PlanError(f"node id {node_id!r} appears twice in plan {name!r}; "
                            "node ids must be unique (give one of them another id=)")
        seen.add(node_id)
    if seen != set(nodes) or any(nodes[i].id != i for i in nodes):
        raise PlanError(f"the nodes of plan {name!r} were changed by hand; build plans "
                        "with plan.call and plan.each")
    if not any(node.kind == "call" for node in nodes.values()):
        raise PlanError(f"plan {name!r} has no step; add one with plan.call(step)")
    names: dict[str, Any] = {}
    for level, ids in levels.items():
        for node_id in ids:
            node = nodes[node_id]
            if node.within != level or node_id == INPUT:
                raise PlanError(f"node {node_id!r} is misplaced in plan {name!r}")
            if node.kind == "call":
                _check_call(name, nodes, node, names)
            elif node.kind == "each":
                _check_each(nodes, node)
            else:
                raise PlanError(f"node {node_id!r} has an unknown kind {node.kind!r}")
    uses_input = any(nodes[i].kind == "call" and nodes[i].uses_input for i in levels[None])
    templates = {level: [_template(nodes[i]) for i in _ordered(name, nodes, ids)]
                 for level, ids in levels.items()}
    return templates, uses_input


def _check_call(name: str, nodes: Mapping[str, Node], node: Node, names: dict[str, Any]
                ) -> None:
    where = f"node {node.id}"
    if not is_step(node.step):
        raise not_a_step(node.step, where)
    other = names.setdefault(node.step.name, node.step)
    if other is not node.step:
        raise PlanError(f"two different steps are named {node.step.name!r} in plan "
                        f"{name!r} ({other.fn_path} and {node.step.fn_path}); give one "
                        "of them another @spot.mark(name=...)")
    for parent in node.parents:
        if parent == INPUT:
            continue
        found = nodes.get(parent)
        if found is None:
            raise PlanError(f"{where}: its parent {parent!r} is not a node of plan "
                            f"{name!r}; use the Values that plan.call returns")
        if found.within != node.within:
            raise PlanError(f"{where}: its parent {parent} is on another level of the plan; a "
                            "fan-out body can use only its element and values made inside it")
        if found.kind != "call":
            raise PlanError(f"{where}: its parent {parent} is a fan-out, which cannot be a "
                            "parent (a join after plan.each is not supported yet)")


def _check_each(nodes: Mapping[str, Node], node: Node) -> None:
    where = f"fan-out {node.id}"
    source = nodes.get(node.source or "")
    if source is None or source.kind != "call" or source.within != node.within:
        raise PlanError(f"{where}: its source {node.source!r} is not a step of its level; "
                        "give plan.each a step or a Value of the same plan")
    body = [nodes[i] for i in node.body]
    if not body:
        raise PlanError(f"{where}: its body has no step")
    if not any(b.kind == "call" and b.uses_input for b in body):
        raise PlanError(f"{where}: its body never uses its element; pass it to a step")


def _ordered(name: str, nodes: Mapping[str, Node], ids: list[str]) -> list[str]:
    """``ids`` in dependency order (parents first, else creation order); a cycle is refused."""
    calls = [i for i in ids if nodes[i].kind == "call"]
    waiting = {i: set(nodes[i].job_parents) for i in calls}
    children: dict[str, list[str]] = {}  # in creation order: the order stays as it was
    for i in calls:
        for parent in waiting[i]:
            children.setdefault(parent, []).append(i)
    done: list[str] = []
    ready = deque(i for i in calls if not waiting[i])
    while ready:  # linear in the nodes and edges (a script may hold thousands of calls)
        current = ready.popleft()
        done.append(current)
        for i in children.get(current, ()):
            waiting[i].discard(current)
            if not waiting[i]:
                ready.append(i)
    if len(done) < len(calls):
        left = [i for i in calls if waiting[i]]
        cycle, at = [left[0]], left[0]
        while True:
            at = next(p for p in sorted(waiting[at]) if p in waiting)
            if at in cycle:
                cycle = [*cycle[cycle.index(at):], at]
                break
            cycle.append(at)
        raise PlanError(f"plan {name!r} has a cycle: {' <- '.join(cycle)}; a node's "
                        "parents must be made before it (use the Values plan.call returns)")
    return done


def _template(node: Node) -> JobTemplate:
    options = node.step.options
    scope = node.scope if node.scope is not None else getattr(options, "scope", None)
    priority = node.priority if node.priority is not None else getattr(options, "priority",
                                                                       None)
    return JobTemplate(node.id, node.step.name, node.job_parents, node.uses_input, scope,
                     priority)

