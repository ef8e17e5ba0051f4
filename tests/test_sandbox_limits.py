"""Limits: deadline (soft, then hard), memory, output. Each is named in the result,
and afterwards the sandbox, the host and other sandboxes still work."""

import time

from throwaway.sandbox import Limits


def test_soft_timeout_interrupts_and_keeps_globals(fresh):
    # A long grace: the interrupt lands in ~30 ms, but a loaded machine can stall
    # the runtime for seconds, and a restart here would say nothing about interrupts.
    sb = fresh(limits=Limits(timeout=5, grace=20))
    sb.exec("kept = 'yes'")
    r = sb.exec("while True: pass", timeout=0.5)
    assert r.limit == "timeout"
    assert r.error.type == "TimeoutError"
    assert not r.restarted
    assert sb.exec("kept").json == "yes"


def test_hard_kill_when_the_guest_ignores_the_interrupt(fresh):
    sb = fresh(limits=Limits(timeout=0.5, grace=0.5))
    other = fresh()
    other.exec("mine = 1")
    sb.exec("kept = 'no'")
    code = "while True:\n    try:\n        while True: pass\n    except KeyboardInterrupt:\n        pass"
    r = sb.exec(code)
    assert r.limit == "timeout" and r.restarted
    assert "replaced" in r.error.message
    assert sb.exec("kept").error.type == "NameError"  # a fresh worker
    assert sb.exec("1 + 1").json == 2
    assert other.exec("mine").json == 1  # the other sandbox is unharmed


def test_hard_kill_of_a_guest_stuck_in_javascript(fresh):
    sb = fresh(limits=Limits(timeout=0.5, grace=0.3))
    r = sb.exec("import js\njs.eval('while (true) {}')")
    assert r.limit == "timeout" and r.restarted
    assert sb.exec("'alive'").json == "alive"


def test_deadline_during_a_slow_host_call(fresh):
    sb = fresh(limits=Limits(timeout=0.5, grace=0.5))
    sb.calls.add("sleep", lambda args, data: time.sleep(args))
    r = sb.exec("import throwaway\nthrowaway.call('sleep', 2)\n'finished'")
    assert r.limit == "timeout"
    assert r.value is None
    assert sb.exec("'after'").json == "after"


def test_memory_limit_raises_memory_error_and_keeps_the_session(fresh):
    sb = fresh(limits=Limits(memory_mb=256))
    sb.exec("kept = 3")
    r = sb.exec("blob = bytearray(600 * 1024 * 1024)")
    assert r.limit == "memory"
    assert r.error.type == "MemoryError"
    assert sb.exec("kept").json == 3


def test_output_limit_stops_the_cell(fresh):
    sb = fresh(limits=Limits(output_bytes=10_000))
    r = sb.exec("while True: print('x' * 100)")
    assert r.limit == "output"
    assert r.error.type == "OutputLimitExceeded"
    assert len(r.stdout.encode()) == 10_000
    assert sb.exec("print('ok')").stdout == "ok\n"


def test_output_limit_on_one_huge_write(fresh):
    sb = fresh(limits=Limits(output_bytes=1000))
    r = sb.exec("print('y' * 5_000_000)")
    assert r.limit == "output"
    assert r.stdout == "y" * 1000


def test_signals_for_the_hosts_process_group_leave_the_runtime_running(fresh):
    """Ctrl-C or a SIGTERM meant for the host (a worker stopping gracefully) must not kill the step in flight."""
    import os
    import signal
    import time

    sb = fresh()
    sb.exec("x = 41")
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        os.kill(sb.pid, sig)
    time.sleep(0.3)
    r = sb.exec("x + 1")
    assert (r.json, r.restarted) == (42, False)
