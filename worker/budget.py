"""A byte budget for decodes in flight: several threads decode at once, but never more than the budget
together, so a batch of huge images waits its turn instead of exhausting the worker's memory."""
from __future__ import annotations

import contextlib
import threading


class DecodeBudget:
    def __init__(self, capacity: int):
        self.capacity = capacity
        self.in_use = 0
        self.peak = 0
        self._changed = threading.Condition()

    @contextlib.contextmanager
    def reserve(self, size: int):
        """Hold ``size`` bytes of the budget (a single request larger than it takes the whole budget)."""
        size = min(size, self.capacity)
        with self._changed:
            self._changed.wait_for(lambda: self.in_use + size <= self.capacity)
            self.in_use += size
            self.peak = max(self.peak, self.in_use)
        try:
            yield
        finally:
            with self._changed:
                self.in_use -= size
                self._changed.notify_all()
