"""The decode budget: threads decode at once, never more bytes together than the budget."""
import threading
import time

from worker.budget import DecodeBudget


def test_decodes_wait_for_room_in_the_budget_and_never_exceed_it():
    budget = DecodeBudget(100)
    active, in_use, alone = [], [], []
    lock = threading.Lock()

    def decode(size):
        with budget.reserve(size):
            with lock:
                active.append(size)
                in_use.append(budget.in_use)
                if size > 100:
                    alone.append(list(active))
            time.sleep(0.02)
            with lock:
                active.remove(size)

    threads = [threading.Thread(target=decode, args=(size,)) for size in (60, 60, 30, 30, 500, 10) * 3]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert max(in_use) <= 100 and budget.peak <= 100 and budget.in_use == 0
    assert max(in_use) > 60  # several decodes did share the budget
    assert alone == [[500]] * 3  # an image larger than the whole budget runs, but alone
