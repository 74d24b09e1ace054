"""The linked artifacts web pages, served by the query service over the same ClickHouse history as /v1/*.

Pages (server-rendered HTML, a little JavaScript for live refresh; no external assets):

- ``/artifacts``: every artifact (an image index with its platforms, or a single digest) with its
  storage, source repository, deployments, runtime risks and open alerts; filtered with the alert filter
  vocabulary, searched, sorted and paged;
- ``/artifacts/{digest}``: one artifact's linked view with a lifecycle timeline;
- ``/triage``: prioritised alerts with filter chips, an as-of picker and CSV export;
- ``/overview``: ingest rate, rejects, deployments and open alerts as simple charts.

``mount_web`` adds them to the query API. Every page needs the query token (a bearer header, or the
session cookie that ``?token=`` or the login form sets).
"""

from web.routes import mount_web

__all__ = ["mount_web"]
