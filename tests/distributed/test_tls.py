"""The coordinator over HTTPS (browsers give WebGPU only to secure contexts): a worker trusting a
self-signed certificate trains through it; one that does not is refused by TLS."""

import asyncio
import shutil
import ssl
import subprocess

import aiohttp
import pytest
from aiohttp import web

from sukiyaki.distributed.coordinator.app import CoordinatorServer, make_app
from sukiyaki.distributed.coordinator.state import Settings
from sukiyaki.distributed.worker import Worker

import dist_helpers as D  # noqa: E402


@pytest.fixture
def certificate(tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl (the command) is not installed: no self-signed certificate to test TLS with")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


def test_training_over_https(certificate):
    cert, key = certificate

    async def scenario():
        state = D.make_state(Settings(batch_size=32, iterations=2, seed=0))
        server = CoordinatorServer(state, D.TOKEN, D.ADMIN)
        runner = web.AppRunner(make_app(server), access_log=None)
        await runner.setup()
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, key)
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
        await site.start()
        url = f"https://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
        try:
            # not trusting the certificate: TLS refuses before any frame
            async with aiohttp.ClientSession() as session:
                with pytest.raises(aiohttp.ClientConnectorCertificateError):
                    await Worker(url, D.TOKEN, reconnect=False)._session_loop(session)
            worker = Worker(url, D.TOKEN, cafile=str(cert))
            task = asyncio.create_task(worker.run())
            await asyncio.wait_for(server.done.wait(), 60)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        finally:
            await runner.cleanup()
        return state

    state = asyncio.run(scenario())
    assert state.iteration == 2
