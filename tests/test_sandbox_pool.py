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
