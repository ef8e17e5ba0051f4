"""Host calls: guest code calls host functions synchronously over the bridge."""

import asyncio
import errno

from throwaway.sandbox import AsyncSandbox, HostCalls, Reply, Sandbox


def make_calls():
    calls = HostCalls()

    @calls.handler("add")
    def add(args, data):
        return args["a"] + args["b"]

    @calls.handler("echo")
    def echo(args, data):
        return data

    @calls.handler("both")
    def both(args, data):
        return Reply({"n": len(data)}, data[::-1])

    @calls.handler("slow_async")
    async def slow_async(args, data):
        await asyncio.sleep(0.05)
        return {"waited": args}

    @calls.handler("missing")
    def missing(args, data):
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", "/data/x.csv")

    @calls.handler("bad_value")
    def bad_value(args, data):
        raise ValueError("nope")

    @calls.handler("custom")
    def custom(args, data):
        class Weird(Exception):
            pass

        raise Weird("secret host detail")

    @calls.handler("not_json")
    def not_json(args, data):
        return object()

    return calls


def test_values_bytes_and_errors_cross():
    with Sandbox(calls=make_calls()) as sb:
        r = sb.exec("from throwaway import call\ncall('add', {'a': 2, 'b': 3})")
        assert r.value == "(5, b'')"

        r = sb.exec("data = bytes(range(256)) * 4000\nv, back = call('echo', None, data)\n(v, back == data, len(back))")
        assert r.json == [None, True, 1_024_000]

        assert sb.exec("call('both', None, b'abc')").value == "({'n': 3}, b'cba')"
        assert sb.exec("call('slow_async', 'x')[0]").json == {"waited": "x"}

        r = sb.exec("import errno\ntry:\n    call('missing')\nexcept FileNotFoundError as e:\n"
                    "    r = (e.errno == errno.ENOENT, e.strerror, e.filename)\nr")
        assert r.json == [True, "No such file or directory", "/data/x.csv"]

        r = sb.exec("call('bad_value')")
        assert (r.error.type, r.error.message) == ("ValueError", "nope")

        r = sb.exec("call('custom')")
        assert r.error.type == "HostError"  # unknown host exception types do not cross as themselves

        r = sb.exec("call('not_json')")
        assert r.error.type == "TypeError" and "not JSON" in r.error.message

        r = sb.exec("call('no_such_handler')")
        assert r.error.type == "LookupError" and "no_such_handler" in r.error.message


def test_handlers_added_after_start_are_seen():
    with Sandbox() as sb:
        sb.calls.add("late", lambda args, data: "here")
        assert sb.exec("import throwaway; throwaway.call('late')[0]").json == "here"


def test_async_sandbox_serves_async_and_sync_handlers():
    async def main():
        async with AsyncSandbox(calls=make_calls()) as sb:
            a = await sb.exec("from throwaway import call\ncall('slow_async', 1)[0]")
            b = await sb.exec("call('add', {'a': 1, 'b': 1})[0]")
            return a.json, b.json

    assert asyncio.run(main()) == ({"waited": 1}, 2)


def test_many_calls_in_one_cell():
    with Sandbox(calls=make_calls()) as sb:
        r = sb.exec("from throwaway import call\nsum(call('add', {'a': i, 'b': 1})[0] for i in range(2000))")
        assert r.json == sum(range(2000)) + 2000
