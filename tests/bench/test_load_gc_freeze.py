"""The load generator freezes what it keeps, so that Python's full collections do not pause
its callback receiver for longer as a soak grows (docs/soak.md)."""

import asyncio
import gc

from bench.load.__main__ import freeze_kept_records


def test_records_kept_across_a_freeze_are_left_out_of_collections() -> None:
    kept = [{"order": i, "callbacks": {"paid": (float(i), "", "")}} for i in range(20_000)]

    async def run_briefly() -> None:
        freezer = asyncio.create_task(freeze_kept_records(every_s=0.01))
        await asyncio.sleep(0.1)
        freezer.cancel()

    gc.unfreeze()
    try:
        assert gc.get_freeze_count() == 0
        asyncio.run(run_briefly())
        frozen = gc.get_freeze_count()
        assert frozen >= len(kept)  # every record dict, and the rest the process held
        assert not any(obj is kept for obj in gc.get_objects())  # out of every generation
    finally:
        gc.unfreeze()
