"""A URLconf for tests/portal/test_request_context.py: a page that logs a line, and one that enqueues a task that
logs one; neither passes the request id to the logger."""

from __future__ import annotations

import logging

from celery import shared_task
from django.http import HttpRequest, HttpResponse
from django.urls import path

log = logging.getLogger("portal.check")


@shared_task(name="tests.portal.log_a_line", ignore_result=True)
def log_a_line() -> None:
    log.info("the task ran")


def logs_a_line(request: HttpRequest) -> HttpResponse:
    log.info("the page ran")
    return HttpResponse("ok")


def enqueues_a_task(request: HttpRequest) -> HttpResponse:
    log_a_line.delay()
    return HttpResponse("queued")


urlpatterns = [path("logs/", logs_a_line), path("enqueues/", enqueues_a_task)]
