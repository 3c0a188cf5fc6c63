"""TaskManager for asyncio: the same client and worker, with the library run off the loop.

    from taskmanager.aio import AsyncClient, Worker

    async with AsyncClient.open({"database_url": "mysql://app:secret@127.0.0.1:3306/queue"}) as tm:
        await tm.enqueue("email.send", {"to": "ada@example.com"})
        worker = Worker(tm, {"email.send": send}, concurrency=8)
        worker.install_signal_handlers()
        await worker.run()
"""

from ..worker import PermanentError, RetryLater
from ._client import AsyncClaimReport, AsyncClient, AsyncTask
from ._worker import Handler, Worker

__all__ = ["AsyncClient", "AsyncTask", "AsyncClaimReport", "Worker", "Handler", "PermanentError", "RetryLater"]
