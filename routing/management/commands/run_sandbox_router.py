"""`manage.py run_sandbox_router`: serve the sandbox router (routing/sandbox.py) on a loopback port."""

from __future__ import annotations

from typing import Any

import uvicorn
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from routing.sandbox import DEFAULT_KEY, SandboxConfig, SandboxRouter


class Command(BaseCommand):
    help = "Serve the sandbox router: a Cortensor router node and OpenAI-compatible stand-in with fault injection."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8100)
        parser.add_argument("--key", default=None, help="router key it accepts (default: $SANDBOX_ROUTER_KEY)")
        parser.add_argument("--models", default="gpt-oss-20b,gemma-4-26b", help="comma-separated model names")
        parser.add_argument("--latency-ms", type=float, default=0.0, help="delay before each response starts")
        parser.add_argument("--token-delay-ms", type=float, default=0.0, help="delay between streamed tokens")
        parser.add_argument("--error-rate", type=float, default=0.0, help="share of requests that fail (0..1)")
        parser.add_argument("--error-status", type=int, default=500, help="status code of injected failures")
        parser.add_argument("--hang", action="store_true", help="accept requests and never answer")
        parser.add_argument("--seed", type=int, default=0, help="seed of the failure injection")

    def handle(self, *args: Any, **options: Any) -> None:
        key = options["key"] or settings.SANDBOX_ROUTER_KEY
        config = SandboxConfig(key=key, models=[m.strip() for m in options["models"].split(",") if m.strip()])
        try:
            config.update(
                {
                    "latency_ms": options["latency_ms"],
                    "token_delay_ms": options["token_delay_ms"],
                    "error_rate": options["error_rate"],
                    "error_status": options["error_status"],
                    "hang": options["hang"],
                    "seed": options["seed"],
                }
            )
        except ValueError as error:
            raise CommandError(str(error)) from None
        if key == DEFAULT_KEY:
            self.stdout.write(f"Sandbox router key (development default): {DEFAULT_KEY}")
        self.stdout.write(f"Sandbox router on http://{options['host']}:{options['port']}", ending="\n")
        self.stdout.flush()
        uvicorn.run(
            SandboxRouter(config),
            host=options["host"],
            port=options["port"],
            loop="uvloop",
            http="httptools",
            log_level="warning",
            access_log=False,
            lifespan="on",
        )
