"""Warm pools hand out booted sandboxes, never the same one twice."""

import asyncio

from throwaway.sandbox import AsyncSandboxPool, SandboxPool


def test_pool_hands_out_fresh_sandboxes():
    with SandboxPool(size=2) as pool:
        a, b = pool.acquire(timeout=120), pool.acquire(timeout=120)
        assert a.pid != b.pid
        a.exec("secret = 1")
        pool.release(a)
        c = pool.acquire(timeout=120)
        assert c.exec("secret").error.type == "NameError"  # no state leaks between users
        assert c.pid not in (a.pid, b.pid)
        pool.release(b)
        pool.release(c)


def test_async_pool():
    async def main():
        async with AsyncSandboxPool(size=2) as pool:
            async with pool.sandbox() as sb:
                return (await sb.exec("40 + 2")).json

    assert asyncio.run(main()) == 42


def test_an_async_pool_hands_a_failed_boot_to_the_next_acquire():
    """A sandbox that cannot boot is an error for whoever acquires, not a wait forever."""
    import pytest

    from throwaway.sandbox import SandboxError

    async def main():
        async with AsyncSandboxPool(1, preload=("no_such_package_anywhere",)) as pool:
            with pytest.raises(SandboxError, match="no_such_package_anywhere"):
                await asyncio.wait_for(pool.acquire(), 120)

    asyncio.run(main())


def _fresh_sandbox_state():
    """What a sandbox that no pool warmed shows its user: host cells run, globals."""
    from throwaway.sandbox import Sandbox

    with Sandbox() as sb:
        return sb._session.seq, sb.exec("sorted(globals())").json


def test_a_waiting_sandbox_is_warmed_with_cells_its_user_never_sees():
    """While it waits, a pooled sandbox runs WARM_CELLS host cells; its user
    still gets cell 1, the globals of a new sandbox and no restart."""
    from throwaway.sandbox import pool as pool_module

    seq, names = _fresh_sandbox_state()
    with SandboxPool(size=1) as pool:
        assert pool.wait_warm(timeout=120)
        sb = pool.acquire(timeout=120)
        assert sb._session.seq == seq + pool_module.WARM_CELLS  # the warm-up cells ran
        assert sb._session.cell == 0
        assert sb.exec("sorted(globals())").json == names
        assert 'File "<cell 2>"' in sb.exec("1 / 0").error.traceback
        assert sb.restarts == 0
        pool.release(sb)


def test_a_sandbox_handed_out_is_warmed_no_more():
    """Taking a sandbox stops its warm-up: no host cell of the pool's runs in it after that."""
    import time

    from throwaway.sandbox import pool as pool_module

    seq, _ = _fresh_sandbox_state()
    with SandboxPool(size=1) as pool:
        sb = pool.acquire(timeout=120)  # booted, not yet warm
        taken = sb._session.seq
        assert taken < seq + pool_module.WARM_CELLS
        time.sleep(pool_module.WARM_GAP * (pool_module.WARM_CELLS + 2))
        assert sb._session.seq == taken
        pool.release(sb)


def test_closing_a_pool_leaves_no_runtime_behind():
    """A pool closed while a replacement waits to boot, or a sandbox warms up,
    ends them all: only the sandbox its user holds is still running."""
    import os
    from pathlib import Path

    def runtimes() -> set[int]:
        found = set()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == os.getpid():
                found.add(int(stat.parent.name))
        return found

    before = runtimes()
    pool = SandboxPool(size=2)
    held = pool.acquire(timeout=120)  # its replacement boots a moment later
    pool.close()
    assert pool.wait_warm(timeout=120)
    assert runtimes() - before == {held.pid}
    held.close()


def test_an_async_pool_warms_its_sandboxes_and_hands_out_fresh_ones():
    from throwaway.sandbox import pool as pool_module

    seq, names = _fresh_sandbox_state()

    async def main():
        async with AsyncSandboxPool(size=1) as pool:
            await asyncio.wait_for(pool.wait_warm(), 120)
            async with pool.sandbox() as sb:
                assert sb._session.seq == seq + pool_module.WARM_CELLS
                await sb.exec("secret = 1")
                first = sb.pid
            async with pool.sandbox() as sb:  # its replacement, warm or not
                assert sb.pid != first
                assert (await sb.exec("sorted(globals())")).json == names
                assert sb.restarts == 0

    asyncio.run(main())
