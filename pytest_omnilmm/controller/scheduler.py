"""A batch-aware xdist scheduler written against xdist's public scheduler interface (the ``Scheduling``
protocol that ``pytest_xdist_make_scheduler`` returns), with no subclassing of xdist's own schedulers.

The unit of work is a batch (``batching.plan_units``): a batch's samples share one generate call, so they
never straddle two workers. Crash handling follows plain ``--dist load``: the item a dead worker was
running is reported as the crash, the rest of what it held goes back to the front of the queue, and a
replacement worker picks it up. (xdist's grouped schedulers mishandle crashes; see DESIGN.md.)

Imported only when xdist is installed and ``--dist load`` is asked for.
"""

from __future__ import annotations

import difflib
from collections import deque
from collections.abc import Sequence
from typing import Any

import pytest

from ..batching import plan_units


class BatchScheduling:
    """Hands whole batches to workers; a worker asks for more when it holds fewer than two items
    (xdist keeps a worker's last item pending until it gets more work or is shut down)."""

    def __init__(self, config: pytest.Config, log: Any, batch_size: int, numnodes: int) -> None:
        self.config = config
        self.log = log
        self.batch_size = batch_size
        self.numnodes = numnodes
        self.node2collection: dict[Any, list[str]] = {}
        self.node2pending: dict[Any, list[int]] = {}
        self.collection: list[str] | None = None
        self.queue: deque[list[int]] = deque()  # batches not yet handed out, in collection order

    # -- the Scheduling protocol -------------------------------------------------------------------
    @property
    def nodes(self) -> list[Any]:
        return list(self.node2pending)

    @property
    def collection_is_completed(self) -> bool:
        return len(self.node2collection) >= self.numnodes

    @property
    def tests_finished(self) -> bool:
        if not self.collection_is_completed or self.queue:
            return False
        return all(len(pending) < 2 for pending in self.node2pending.values())

    @property
    def has_pending(self) -> bool:
        return bool(self.queue) or any(self.node2pending.values())

    def add_node(self, node: Any) -> None:
        assert node not in self.node2pending
        self.node2pending[node] = []

    def add_node_collection(self, node: Any, collection: Sequence[str]) -> None:
        assert node in self.node2pending
        if self.collection_is_completed and self.collection is not None:
            # A replacement worker after a crash: it must have collected the same items.
            if list(collection) != self.collection:
                self._report_difference(self.collection, list(collection), node)
                return
        self.node2collection[node] = list(collection)

    def mark_test_complete(self, node: Any, item_index: int, duration: float = 0) -> None:
        self.node2pending[node].remove(item_index)
        self._refill(node)

    def mark_test_pending(self, item: str) -> None:
        assert self.collection is not None
        self.queue.appendleft([self.collection.index(item)])
        for node in self.nodes:
            self._refill(node)

    def remove_pending_tests_from_node(self, node: Any, indices: Sequence[int]) -> None:
        raise NotImplementedError("only work-stealing schedulers take tests back from a node")

    def remove_node(self, node: Any) -> str | None:
        pending = self.node2pending.pop(node)
        if not pending:
            return None
        assert self.collection is not None
        crashed = self.collection[pending.pop(0)]  # a worker runs its items in order: the first one died
        if pending:
            self.queue.appendleft(pending)
        for other in self.nodes:
            self._refill(other)
        return crashed

    def schedule(self) -> None:
        assert self.collection_is_completed
        if self.collection is None:
            collections = list(self.node2collection.items())
            first_node, first = collections[0]
            for other_node, other in collections[1:]:
                if other != first:
                    self._report_difference(first, other, other_node, first_node)
                    self.log("**Different tests collected, aborting run**")
                    return
            self.collection = first
            units = plan_units(first, self.batch_size)
            batches: dict[int, list[int]] = {}
            for index, unit in enumerate(units):
                batches.setdefault(unit, []).append(index)
            self.queue.extend(batches.values())
            if not first:
                return
        for node in self.nodes:
            self._refill(node)

    # -- helpers ----------------------------------------------------------------------------------
    def _refill(self, node: Any) -> None:
        if node.shutting_down or self.collection is None:
            return
        if not self.queue:
            node.shutdown()
            return
        pending = self.node2pending[node]
        if len(pending) >= 2:
            return
        take: list[int] = []
        while self.queue and len(pending) + len(take) < 2:
            take.extend(self.queue.popleft())
        pending.extend(take)
        node.send_runtest_some(take)

    def _report_difference(self, expected: list[str], got: list[str], node: Any, first: Any = None) -> None:
        where = getattr(getattr(node, "gateway", None), "id", "?")
        diff = "\n".join(difflib.unified_diff(expected, got, "first worker", where, lineterm=""))
        msg = f"worker {where} collected different tests than the first worker:\n{diff}"
        self.log(msg)
        report = pytest.CollectReport(nodeid=str(where), outcome="failed", longrepr=msg, result=[])
        self.config.hook.pytest_collectreport(report=report)
