"""The two network clients this project wrote itself instead of using a library's, both on the gateway's hot path.
They stay only while measurements say they earn their keep; the figures below, their benchmarks and the
conformance suite (tests/portal/netclients: TLS with a private CA, Redis AUTH and ACL users, keep-alive connections
closed by the server) are the evidence, and a change to either should re-run both.

`redis_pipe.PipelinedRedis`: a pipelined asyncio Redis client, one connection per event loop, every command issued
in one loop turn sent in one write, replies matched in order and parsed by hiredis; redis-py's exception classes.
Built by `portal.redis.hot_redis()` for the request path (admission, key cache, health board, usage stream);
everything else uses redis-py. Why: redis.asyncio takes a pooled connection and a system call per command. The
admission round trip (the same EVALSHA, in-process, uvloop, `bench/redis_client.py`, five alternating rounds on the
shared 2-core machine, 2026-12-04): under 32 concurrent tasks 8 µs of client CPU per call against redis-py's 79 µs
(with hiredis), p50 1.1 ms against 5.0 ms; one task alone 25 µs against 94 µs, p50 0.055 ms against 0.128 ms.

`http1.HTTP1Client`: an HTTP/1.1 keep-alive client, a pool per origin, each request in one write, answers parsed
by httptools. The gateway's upstream hop (`gateway/upstream.py` builds it from the `GATEWAY_*` settings). Why:
aiohttp's client was a third of the gateway's CPU per request, for features the hop never uses; replacing it took
the gateway's CPU per request (`bench/gateway_cpu.py`) from 384-540 µs to 214-240 µs and its throughput ratio
against the floor proxy from 46% to 63% (docs/performance.md, 2026-12-02).

Both take plain parameters (URLs, sizes, timeouts) and read no settings: portal is the bottom layer.
"""
