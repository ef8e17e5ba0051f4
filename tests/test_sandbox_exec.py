"""exec(): values, output, errors, globals, await — on the real Deno + Pyodide."""

import asyncio

import pytest

from throwaway.sandbox import AsyncSandbox, Sandbox


def test_last_expression_value_and_json(sandbox):
    r = sandbox.exec("{'a': [1, 2.5, None], 'b': 'x'}")
    assert r.ok
    assert r.value == "{'a': [1, 2.5, None], 'b': 'x'}"
    assert r.json == {"a": [1, 2.5, None], "b": "x"}


def test_value_without_json(sandbox):
    r = sandbox.exec("object()")
    assert r.value.startswith("<object object at")
    assert r.json is None


def test_no_value_for_statements_or_trailing_semicolon(sandbox):
    assert sandbox.exec("x = 1").value is None
    assert sandbox.exec("1 + 1;").value is None


def test_globals_persist_across_calls(sandbox):
    sandbox.exec("counter = 41")
    sandbox.exec("counter += 1")
    assert sandbox.exec("counter").json == 42


def test_stdout_and_stderr_are_captured(sandbox):
    r = sandbox.exec("import sys\nprint('out'); print('err', file=sys.stderr)\n'v'")
    assert r.stdout == "out\n"
    assert r.stderr == "err\n"
    assert r.json == "v"


def test_output_streams_to_callback_in_order(sandbox):
    seen = []
    r = sandbox.exec("for i in range(3): print(i)", on_output=lambda s, t: seen.append((s, t)))
    assert "".join(t for s, t in seen if s == "stdout") == "0\n1\n2\n" == r.stdout
    assert len(seen) >= 3  # line by line, not one blob at the end


def test_exception_is_data_with_trimmed_traceback(sandbox):
    r = sandbox.exec("def f():\n    raise ValueError('bad thing')\nf()")
    assert not r.ok
    assert r.error.type == "ValueError"
    assert r.error.message == "bad thing"
    tb = r.error.traceback
    assert tb.startswith("Traceback (most recent call last):")
    assert 'File "<cell' in tb and "raise ValueError('bad thing')" in tb
    assert "_pyodide" not in tb and "_throwaway" not in tb


def test_syntax_error_is_data(sandbox):
    r = sandbox.exec("def (")
    assert r.error.type == "SyntaxError"
    assert "_throwaway" not in r.error.traceback


def test_output_before_an_exception_is_kept(sandbox):
    r = sandbox.exec("print('before')\nraise KeyError('k')")
    assert r.stdout == "before\n"
    assert r.error.type == "KeyError"


def test_top_level_await(sandbox):
    r = sandbox.exec("import asyncio\nawait asyncio.sleep(0.01)\nasync def f(): return 7\nawait f()")
    assert r.ok, r.error
    assert r.json == 7


def test_unicode_output_split_across_writes(sandbox):
    r = sandbox.exec("import sys\nb = 'é€😀'.encode()\nfor i in range(len(b)): sys.stdout.buffer.write(b[i:i+1]); sys.stdout.flush()")
    assert r.stdout == "é€😀"


def test_hostile_repr_does_not_break_the_runner(sandbox):
    r = sandbox.exec("class X:\n    def __repr__(self): raise RuntimeError('no')\nX()")
    assert r.value.startswith("<unrepresentable X")


def test_code_must_be_str(sandbox):
    with pytest.raises(TypeError):
        sandbox.exec(b"1")


def test_restartable_after_close():
    sb = Sandbox()
    assert sb.exec("1").json == 1
    sb.close()
    assert sb.exec("2").json == 2
    sb.close()


def test_async_sandbox_same_shape():
    async def main():
        async with AsyncSandbox() as sb:
            await sb.exec("x = 20")
            seen = []
            r = await sb.exec("print('hi'); x + 22", on_output=lambda s, t: seen.append(t))
            return r, seen

    r, seen = asyncio.run(main())
    assert r.json == 42 and r.stdout == "hi\n" and seen == ["hi\n"]


def test_many_sandboxes_side_by_side():
    boxes = [Sandbox().start() for _ in range(3)]
    try:
        for i, sb in enumerate(boxes):
            sb.exec(f"me = {i}")
        assert [sb.exec("me").json for sb in boxes] == [0, 1, 2]
        assert len({sb.pid for sb in boxes}) == 3
    finally:
        for sb in boxes:
            sb.close()


def test_async_sandboxes_run_concurrently():
    async def main():
        boxes = [AsyncSandbox() for _ in range(2)]
        await asyncio.gather(*(b.start() for b in boxes))
        try:
            code = "import time\nt0 = time.time(); time.sleep(0.5); [t0, time.time()]"
            return await asyncio.gather(*(b.exec(code) for b in boxes))
        finally:
            await asyncio.gather(*(b.close() for b in boxes))

    (a0, a1), (b0, b1) = [r.json for r in asyncio.run(main())]
    assert a0 < b1 and b0 < a1  # the two cells' run times overlap
