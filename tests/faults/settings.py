"""Settings for the fault suite's Celery workers: the project's, with abandoned usage-stream entries taken over after
2 s instead of 60 s, so a test that kills a drain worker mid-batch does not wait a minute for its replacement."""

from portal.settings import *  # noqa: F403

METERING_CLAIM_IDLE_SECONDS = 2
