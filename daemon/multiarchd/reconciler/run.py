"""One run: read desired and observed state, try new interpreter files, plan, apply, read
back, audit, report.

Reconciliation is level-based: a run is told only to look again, never what changed. It re-reads
the policy, the host and the kernel table every time and converges; a run with nothing to do
writes nothing to the table (what it may write besides: a file that carries a CPU model,
host/cpu_models.py; the boot record; a trial's entry, in a table of its own, host/trial.py).
`multiarchd --once`, `multiarchctl` and the service all run this.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping
from dataclasses import replace
from functools import partial
from typing import Protocol

from .. import identity
from ..catalog import load_catalog
from ..core import gate
from ..core.audit import Finding, Severity, audit
from ..core.desired import Desired, Why, desired
from ..core.plan import Kind, Outcome, Plan, plan, release
from ..core.probes import Verdict
from ..core.report import Report, build_report
from ..core.result import Result
from ..host import keep, opened as opened_store
from ..host.audit_facts import audit_facts
from ..host.cpu_models import carry_models
from ..host.facts import candidate_paths, probe_host
from ..host.filecache import FileCache
from ..host.native import native
from ..host.trial import Trials, try_registration
from ..kernel.apply import apply
from ..kernel.owner import not_private
from ..kernel.table import DEFAULT_PATH as DEFAULT_BINFMT
from ..kernel.table import BinfmtTable
from ..model.catalog import Catalog
from ..model.errors import NotMounted, WrongTable
from ..model.host import NOT_KNOWN, FileId
from ..model.options import Config
from ..model.policy import ForeignMode, Policy
from ..model.registration import owned, printable
from ..model.observed import Observed
from ..names import OWNED_PREFIX
from ..policy.files import PolicyCache, load_policy
from . import record
from .boot import boot_record
from .history import History


STALE = identity.UNKNOWN  # equal to no file: what an entry holds, when that is not the file now


def evaluate(config: Config, catalog: Catalog | None = None, observed: Observed | None = None,
             history: History | None = None, policy: Policy | None = None,
             table: BinfmtTable | None = None, seen: identity.Seen | None = None,
             make_models: bool = False, policies: PolicyCache | None = None,
             files: FileCache | None = None) -> tuple[Policy, Desired | None, Observed, Plan]:
    """Everything up to the plan, writing nothing but, with `make_models`, the files that carry
    a CPU model (host/cpu_models.py). A rejected policy changes nothing: with a history that
    holds the last good policy, that one is planned for (drift is still healed); without,
    there is no plan. `seen` notes every file decided from; `policies`, a daemon's cache of
    parsed policies (parsed again only when a file changed); `files`, its cache of what the
    interpreter files were found to be (walked again only when something on the way changed)."""
    catalog = catalog or load_catalog()
    if policy is None:
        policy = _policy(config, catalog, seen, policies)
    table = table or BinfmtTable(config.binfmt_dir)
    nothing_to_do = policy.rejected and (history is None or history.last_good is None)
    if observed is None:
        if table.mounted():
            observed = table.read()
        elif nothing_to_do:  # the policy's problems are the news, not the table
            observed = Observed(())
        else:
            raise NotMounted(f"binfmt_misc is not mounted at {config.binfmt_dir}; mount it with "
                             f"`mount -t binfmt_misc binfmt_misc {config.binfmt_dir}`")
    enforced = policy
    if policy.rejected:
        if history is None or history.last_good is None:
            return policy, None, observed, Plan(())
        enforced = history.last_good
    host = probe_host(catalog, candidate_paths(enforced, catalog), seen=seen, cache=files)
    want = carry_models(desired(enforced, catalog, host), catalog, seen, make_models, files,
                        history.trials if history else None)
    opened = opened_files(observed, config.binfmt_dir, history)
    # A file made again in this run is not the one an entry registered before holds open.
    opened.update({name: STALE for name in want.remade if observed.get(name) is not None})
    want = _gated(want, observed, opened, history, catalog)
    findings = findings_in(observed, catalog, opened, seen, want, files) \
        if want.foreign is ForeignMode.DISABLE_UNSAFE else ()
    return policy, want, observed, plan(want, observed, opened,
                                        _unsafe(want, observed, findings))


def opened_files(observed: Observed, binfmt_dir: str, history: History | None
                 ) -> dict[str, FileId]:
    """Which file the kernel opened for each entry of ours: as the daemon remembers it; for an F
    entry it does not remember, as whoever registered it kept it (host/opened.py: then the
    daemon remembers it too), else NOT_KNOWN."""
    opened = dict(history.opened) if history else {}
    ask = [e.name for e in observed.entries
           if owned(e.name) and "F" in e.registration.flags and e.name not in opened]
    if ask:
        found = opened_store.known(binfmt_dir, ask)
        if history is not None:
            history.opened.update(found)
        opened.update({name: found.get(name, NOT_KNOWN) for name in ask})
    return opened


def _registered(want: Desired, outcomes: tuple[Outcome, ...]) -> dict[str, FileId | None]:
    """The file the kernel opened for each entry of ours these outcomes registered with F
    (None: registered without F, or removed)."""
    wants = {w.entry: w for w in want.wants}
    done: dict[str, FileId | None] = {}
    for o in outcomes:
        action, w = o.action, wants.get(o.action.entry)
        if o.ok and owned(action.entry) and action.kind in (Kind.REGISTER, Kind.REPLACE,
                                                             Kind.REMOVE):
            kept = action.registration is not None and "F" in action.registration.flags
            done[action.entry] = w.interpreter_id if kept and w else None
    return done


def _policy(config: Config, catalog: Catalog, seen: identity.Seen | None,
            policies: PolicyCache | None) -> Policy:
    if policies is not None:
        return policies.load(config.policy_path, catalog, seen)
    return load_policy(config.policy_path, catalog, seen=seen)


def findings_in(observed: Observed, catalog: Catalog, opened: Mapping[str, FileId] | None = None,
                seen: identity.Seen | None = None, want: Desired | None = None,
                files: FileCache | None = None) -> tuple[Finding, ...]:
    """The audit of the whole table (core/audit.py). `want`: this run's desired state, whose
    interpreters were judged trusted moments ago (host/facts.py) and are not looked at again,
    and which says what this machine runs natively; `files`: as for evaluate()."""
    if want is None:
        facts = audit_facts(observed, catalog, seen=seen, cache=files)
    else:
        judged = {w.entry: (w.interpreter, w.interpreter_id) for w in want.wants
                  if w.registration is not None and w.interpreter}
        own = [w.label for w in want.wants if w.verdict is Why.NATIVE]
        facts = audit_facts(observed, catalog, own, seen, judged, files)
    return audit(observed, facts, opened)


def _unsafe(want: Desired, observed: Observed, findings: tuple[Finding, ...]) -> dict[str, str]:
    """With foreign_entries: disable-unsafe, the other tools' entries with a high-severity
    finding, and why (the first reason)."""
    if want.foreign is not ForeignMode.DISABLE_UNSAFE:
        return {}
    why: dict[str, str] = {}
    for f in findings:
        if f.severity is Severity.HIGH:
            why.setdefault(f.entry, f.reason)
    return {e.name: why[printable(e.name)] for e in observed.entries
            if not owned(e.name) and printable(e.name) in why}


def _gated(want: Desired, observed: Observed, opened: dict[str, FileId],
           history: History | None, catalog: Catalog) -> Desired:
    """`want` with every new interpreter file tried before it replaces one that works, and
    held back if it failed, is still being tried (a service tries off its loop, and runs again
    when the answer comes), or the policy pins the entry (core/gate.py)."""
    changed = gate.changes(want, observed, opened)
    if not changed:
        return want
    pins = {c.entry for c in changed if gate.pinned(c, history.released if history else ())}
    trials = history.trials if history else Trials()
    verdicts: dict[str, Verdict] = {}
    trying = set()
    for c in changed:
        reg = c.want.registration
        if c.entry in pins or reg is None:
            continue
        # Keyed by the file's whole note (inode, size, times), not its inode alone: the inode
        # of a file that failed and was renamed over is soon given to the next one.
        tried = (c.want.interpreter, c.want.interpreter_id, reg)
        verdict = trials.answer(c.entry, tried, partial(try_registration, c.want.label, reg,
                                                        catalog))
        if verdict is None:
            trying.add(c.entry)
        else:
            verdicts[c.entry] = verdict
    return gate.gated(want, changed, verdicts, pins, trying)


class Table(Protocol):
    """The kernel table as far as mounting and looking go (kernel.table.BinfmtTable is the real
    one)."""

    def mounted(self) -> bool: ...
    def own(self) -> bool: ...
    def mount(self, private: bool = False) -> None: ...
    def read(self) -> Observed: ...


def ensure_mounted(table: Table, may_mount: bool, private: bool = False) -> bool:
    """Whether binfmt_misc is mounted (with `private`: this user namespace's own), mounting it
    first when it is not and we may (only at its standard place, and not when told --no-mount;
    a private table only if `private`). --private always means a table of its own: over one
    inherited from an outer namespace (root's, inside `podman unshare`), a new instance is
    mounted. Never unmounts."""
    if table.mounted() and not (private and not table.own()):
        return True
    if not may_mount:
        if table.mounted():
            raise NotMounted("the table mounted there is an outer user namespace's, not this "
                             "one's own (--private): mount this namespace's own there, or let "
                             "multiarchd mount it (without --no-mount)")
        return False
    table.mount(private)
    return table.mounted()


def keep_boot_record(config: Config, want: Desired, after: Observed,
                     table: tuple[tuple[tuple[str, bytes], ...], str], seen: identity.Seen,
                     history: History | None) -> None:
    """Keep what --once would do at the next boot (record.py), when it differs from what was
    kept: a daemon makes it again only when what it is made from changed."""
    others = tuple((n, d) for n, d in table[0] if not n.startswith(OWNED_PREFIX))
    key = (config.policy_path, seen.key(), others, table[1], native()[0])
    if history is not None and history.record_key == key:
        return
    text = boot_record(config.policy_path, want, after, table, native()[0], seen)
    if text is None:  # nothing a replay could do alike: no record is better than a stale one
        with contextlib.suppress(OSError):
            os.unlink(record.path())
        if history is not None:
            history.record_key = key  # (the same inputs make no record again: not worked out anew)
        return
    # Nowhere to keep it, or a path that is not UTF-8: the next boot runs in full.
    with contextlib.suppress(OSError, UnicodeError):
        if keep.read_kept(record.path()) != text:
            keep.write_whole(record.path(), text, make_dir=True)
        if history is not None:
            history.record_key = key


def unregister_owned(config: Config) -> tuple[Outcome, ...]:
    """Remove every entry of ours (multiarch-*), nothing else; an unmounted table has none (and
    is not mounted for this)."""
    table = BinfmtTable(config.binfmt_dir)
    if not table.mounted():
        return ()
    return apply(release(table.read()), table)


def reconcile_once(config: Config, dry_run: bool = False, catalog: Catalog | None = None,
                   history: History | None = None, mount: bool = True,
                   now: float | None = None, keep_record: bool = False,
                   policies: PolicyCache | None = None, files: FileCache | None = None
                   ) -> Result:
    """One run. `keep_record`: this is a run of the boot path (`--once`, the service), whose
    record the next boot replays; any other caller (`multiarchctl apply --local --config
    other.yaml`) leaves the record alone. `policies`, `files`: as for evaluate()."""
    if config.private and (why := not_private(config.binfmt_dir)) is not None:
        raise WrongTable(why)  # --private where the only table is the host's
    catalog = catalog or load_catalog()
    seen = identity.Seen()
    policy = _policy(config, catalog, seen, policies)
    table = BinfmtTable(config.binfmt_dir)
    if (mount or config.private) and not dry_run and \
            not (policy.rejected and (history is None or history.last_good is None)):
        # Only to apply something: a bad policy mounts nothing. (Without `mount`, --private
        # still asks that the table is this namespace's own.)
        ensure_mounted(table, mount and config.binfmt_dir == DEFAULT_BINFMT, config.private)
    policy, want, observed, todo = evaluate(config, catalog, history=history, policy=policy,
                                            table=table, seen=seen, make_models=not dry_run,
                                            policies=policies, files=files)
    if want is None:
        return Result(policy, None, todo, Report((), (), policy.problems, (), observed.enabled,
                                                 policy_rejected=True))
    enforced = history.last_good if history and policy.rejected else policy
    drift = history.drift(want, observed) if history else frozenset()
    now = time.monotonic() if now is None else now
    conflicts: frozenset[str] = frozenset()
    refused: dict[str, str] = {}
    planned = todo
    if history:
        todo, conflicts, refused = history.hold_back(planned, drift, now)
    outcomes: tuple[Outcome, ...] = ()
    after = observed
    opened = opened_files(observed, config.binfmt_dir, history)
    if todo and not dry_run:
        outcomes = apply(todo, table)
        after = table.read()
        registered = _registered(want, outcomes)
        if registered:  # for whoever comes next: the daemon after a restart, say
            opened_store.keep_opened(config.binfmt_dir, registered)
        opened = {name: file for name, file in {**opened, **registered}.items()
                  if file is not None}
    # (before the boot record is kept: what the audit reads is keyed by it, as everything read)
    findings = findings_in(after, catalog, opened, seen, want, files)
    if history and not dry_run:
        history.remember(want, after, outcomes, drift, now)  # what is right now, is known right
        # Whatever changed between the writes and the read-back is still to do: then no event
        # may be taken for the run's own. (Nothing written: the table read is the one planned
        # for, and what is still to do, that plan.)
        left = plan(want, after, history.opened, _unsafe(want, after, findings)) \
            if outcomes else planned
        history.last_table = None if left else after
        if not policy.rejected:
            history.last_good = policy
    if keep_record and not dry_run and not policy.rejected:
        keep_boot_record(config, want, after, table.raw, seen, history)
    report = build_report(want, after, outcomes, conflicts, refused, findings)
    if policy.rejected:  # the last good policy was applied; the file on disk is the problem
        report = replace(report, problems=policy.problems, policy_rejected=True)
    return Result(policy, want, todo, report, drift, conflicts, enforced)
