"""The Celery application: broker and results on Redis, or eager in embedded mode (settings.CELERY_*).

A task enqueued while serving a request logs as that request: the request id (portal/request_context.py) travels in
the task message's headers and is set around the task's run in the worker. Tasks beat starts carry none. An eager
task (embedded mode) runs in the request's own context and needs no header.
"""

from __future__ import annotations

import os
from contextvars import Token
from typing import Any

from celery import Celery, Task
from celery.signals import before_task_publish, task_postrun, task_prerun

from portal.request_context import request_id_var, sane_request_id

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

REQUEST_ID_HEADER = "portal_request_id"

# Task id -> the token to reset the request id with when that task ends (prerun and postrun run in its context).
_tokens: dict[str, Token[str | None]] = {}


@before_task_publish.connect
def _send_request_id(headers: dict[str, Any] | None = None, **_: Any) -> None:
    request_id = request_id_var.get()
    if request_id and headers is not None:
        headers.setdefault(REQUEST_ID_HEADER, request_id)


def _offered_request_id(task: Task) -> str | None:
    # A worker turns the message's headers into attributes of the task's request; `apply(headers=...)` keeps them apart.
    offered = getattr(task.request, REQUEST_ID_HEADER, None) or (task.request.headers or {}).get(REQUEST_ID_HEADER)
    return sane_request_id(offered)


@task_prerun.connect
def _adopt_request_id(task_id: str | None = None, task: Task | None = None, **_: Any) -> None:
    request_id = _offered_request_id(task) if task is not None else None
    if request_id and task_id:
        _tokens[task_id] = request_id_var.set(request_id)


@task_postrun.connect
def _drop_request_id(task_id: str | None = None, **_: Any) -> None:
    token = _tokens.pop(task_id, None) if task_id else None
    if token is not None:
        request_id_var.reset(token)
