"""uvicorn's HTTP protocol with a deadline on a request's headers.

uvicorn closes a keep-alive connection that stays idle, but it never closes one that keeps sending a request's
headers a byte at a time, or that opens and sends nothing: each such connection holds a socket and a buffer for
as long as the client likes. Here every connection must complete a request's headers within
`timeout_keep_alive` seconds of opening, and of each answer (the server sets that to `read_timeout_s`); else it
is closed. The body's time is `Guard`'s business (408).
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.auto import AutoHTTPProtocol


class HeaderDeadlineProtocol(AutoHTTPProtocol):  # type: ignore[valid-type, misc]
    """httptools' protocol (h11's where httptools is missing), closing connections whose headers are late."""

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)
        self._expect_headers()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._expect_headers()

    def _expect_headers(self) -> None:
        """A new request's headers must arrive within the deadline: that request replaces `self.cycle`."""
        self.loop.call_later(self.timeout_keep_alive, self._headers_overdue, self.cycle)

    def _headers_overdue(self, cycle) -> None:
        if self.cycle is cycle and not self.transport.is_closing():
            self.transport.close()
