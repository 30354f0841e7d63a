"""The engine: deployments, sites and runs kept in memory, driven by pushes, recorded in batches.

Everything runs on one event loop and no method awaits between reading and changing state, so
no lock is needed. Hot path of a run: a result arrives (`report`) -> the run's state machine
says what became ready -> Execute orders are numbered and held; the recorder commits the changes
a few milliseconds later, in one transaction with everything else that changed meanwhile, and
only then do the orders leave and are the worker's reports acknowledged (ReportAck), so a
runner crash loses nothing the worker will not send again, and no worker runs what the runner
could forget.

Time comes from the `Clock` (dates) and `Timers` (monotonic time, retry timers, the heartbeat
monitor, the deadline reaper) ports, so tests drive it without sleeping.

Parts, each owning one rule and sharing the `EngineState`:
- links.WorkerLinks: which worker serves a site (its credential checked), heartbeats, numbered
  orders, acks after commit;
- sites.SiteAdmin: sites created by admins, their credentials rotated or revoked, archived;
- placement.Placer: which site runs each step; re-placing when a site goes offline;
- reconciliation.Reconciler: what a (re)connecting worker has vs. what is desired;
- dispatch.Dispatcher: runs and executions: dispatch, results, retries, lost executions run
  again, waiting steps;
- transfers.TransferGrants: which objects a site may move through presigned URLs;
- deadlines.Reaper: step timeouts and the wait for a site, ended periodically;
- log_hub.LogHub: live log subscribers;
- facade.Engine: the public face, routing each command and report to the parts.
"""

from .facade import Engine
from .links import SiteTaken, WorkerRefused
from .sites import SiteExists
from .state import EngineSettings, EngineState, EngineStats, WorkerLink
from .transfers import MAX_TRANSFERS, TransferAsk, TransferDenied, TransferMethod

__all__ = [
    "MAX_TRANSFERS",
    "Engine",
    "EngineSettings",
    "EngineState",
    "EngineStats",
    "SiteExists",
    "SiteTaken",
    "TransferAsk",
    "TransferDenied",
    "TransferMethod",
    "WorkerLink",
    "WorkerRefused",
]
