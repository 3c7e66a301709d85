"""Session-wide fixtures.

``services`` starts one throwaway Redis and one PostgreSQL (see
``loadtest/processes.py``) the first time a test asks for it, and stops them at the
end of the session. A missing binary fails the requesting tests loudly with
what to install: the scaled engine's tests are never skipped silently.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from loadtest.processes import MissingBinary
from tests.services import Services


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def services() -> AsyncIterator[Services]:
    try:
        started = await Services.start()
    except MissingBinary as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield started
    finally:
        await started.close()
