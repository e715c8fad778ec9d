"""Where a simulated round's time goes: the coordinator's timeline and its event loop, beside the workers'.

:class:`CoordinatorProbe` wraps a few methods of one ``CoordinatorServer`` instance (behaviour
unchanged) and runs a loop-lag monitor on its event loop; :class:`WorkerTrace` is what each
simulated worker records of its tasks (in the workers' process, written to a JSON file at its
end). ``time.monotonic`` is the system's monotonic clock, the same in both processes, so the
two line up. :func:`timeline` puts them together per round, every time in seconds from the
round's start (the end of the round before: its optimizer step is taken while the new weights
are encoded).

Columns (medians over the measured rounds):

- loop CPU: CPU seconds of the coordinator's event-loop thread in the round (``time.thread_time``);
- loop lag: seconds the event loop answered late, summed (a 5 ms sleep that woke up more than
  1 ms late adds its lateness): the loop busy or waiting for the GIL;
- encoded: the new weights stepped and encoded (the Broadcast's thread done);
- out: the last PARAMS part handed to a worker's socket (coordinator);
- in: the last PARAMS part in at a worker (after its link); down: a worker's TASK to its last
  PARAMS part (median over workers; its link alone needs d / Lw);
- computed: the last worker's compute done (its last layer's backward);
- sent: the last RESULT sent by a worker (after its link); up: a worker's first GRADS part to
  its RESULT sent (median; its link alone needs u / Lw);
- got: the last RESULT taken by the coordinator (read, paced by its link, checked);
- sums: the wait, after the last RESULT, for the adds queued on the round's sums;
- end: the round's end (its length).

Example:
    >>> probe = CoordinatorProbe(server, clock)   # doctest: +SKIP
    >>> timeline(probe, clock, traces, warmup=1)   # doctest: +SKIP
"""

import asyncio
import json
import statistics
import time
from pathlib import Path

#: The lag monitor's sleep, and the lateness below which a wake-up counts as on time.
LAG_SLEEP, LAG_FLOOR = 0.005, 0.001


class CoordinatorProbe:
    """Records the coordinator's events of each round (see the module docstring).

    Args:
        server: the ``CoordinatorServer`` (its methods are wrapped on this instance only).
    """

    def __init__(self, server):
        self.server = server
        self.events = []  # (monotonic time, what, seconds) in the order they happened
        self._seen = None
        self._task = None
        self._wrap()

    def _note(self, what, seconds=0.0, t=None):
        self.events.append((time.monotonic() if t is None else t, what, seconds))

    def _wrap(self):
        s = self.server
        current, stream, on_result, settled = s.current_broadcast, s._stream, s.on_result, s._sums_settled

        def current_broadcast():
            bc = current()
            if bc is not self._seen:
                self._seen = bc
                bc.future.add_done_callback(lambda f: self._note("encoded"))
            return bc

        async def _stream(wid, bc):
            try:
                return await stream(wid, bc)
            finally:
                self._note("out")

        async def _on_result(wid, frame, now):
            self._note("got", t=now)
            return await on_result(wid, frame, now)

        async def _sums_settled():
            t0 = time.monotonic()
            try:
                return await settled()
            finally:
                self._note("sums", time.monotonic() - t0)

        s.current_broadcast, s._stream, s.on_result, s._sums_settled = current_broadcast, _stream, _on_result, \
            _sums_settled

    def start(self):
        """Start the loop-lag monitor (on the running loop)."""
        self._task = asyncio.get_running_loop().create_task(self._lag())

    def stop(self):
        if self._task is not None:
            self._task.cancel()

    async def _lag(self):
        while True:
            t0 = time.monotonic()
            await asyncio.sleep(LAG_SLEEP)
            late = time.monotonic() - t0 - LAG_SLEEP
            if late > LAG_FLOOR:
                self._note("lag", late)


class WorkerTrace:
    """A simulated worker's record of its tasks: per iteration, when things happened (monotonic)."""

    def __init__(self):
        self.tasks = {}  # iteration -> {event: time}

    def note(self, iteration, what, first=False):
        """Note ``what`` of ``iteration`` now (``first``: keep the first time, else the last)."""
        rec = self.tasks.setdefault(int(iteration), {})
        if not (first and what in rec):
            rec[what] = time.monotonic()

    def to_json(self):
        return {str(k): v for k, v in self.tasks.items()}


def save_traces(path, traces):
    Path(path).write_text(json.dumps([t.to_json() for t in traces]))


def load_traces(path):
    """[{iteration: {event: time}}] per worker ([] when the file is missing)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return []
    return [{int(k): v for k, v in w.items()} for w in data]


def _median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def timeline(probe, marks, traces, warmup, steps=1):
    """The columns of the module docstring, medians over the measured rounds (rounds after ``warmup``).

    Args:
        probe: the point's :class:`CoordinatorProbe`.
        marks: the RoundClock's marks: (time, ..., loop thread CPU time as the last item) at the start
            and at the end of each round.
        traces: :func:`load_traces` of the workers' process.
        warmup: rounds not measured.
        steps: iterations a round (round k is iteration k * steps).
    """
    rows = []
    for k in range(warmup, len(marks) - 1):
        t0, t1 = marks[k][0], marks[k + 1][0]
        ev = [(t - t0, what, sec) for t, what, sec in probe.events if t0 <= t < t1]

        def last(what):
            ts = [t for t, w, _ in ev if w == what]
            return max(ts) if ts else None

        sums = [sec for _, w, sec in ev if w == "sums"]
        recs = [w[k * steps] for w in traces if k * steps in w]

        def wlast(what):
            ts = [r[what] - t0 for r in recs if what in r]
            return max(ts) if ts else None

        rows.append({
            "loop_cpu": marks[k + 1][-1] - marks[k][-1],
            "loop_lag": sum(sec for _, w, sec in ev if w == "lag"),
            "encoded": last("encoded"), "out": last("out"), "in": wlast("params_in"),
            "down": _median([r["params_in"] - r["task"] for r in recs if "params_in" in r and "task" in r]),
            "computed": wlast("computed"), "sent": wlast("result_sent"),
            "up": _median([r["result_sent"] - r["grads_first"] for r in recs if "result_sent" in r and "grads_first" in r]),
            "got": last("got"), "sums": sums[-1] if sums else None, "end": t1 - t0})
    keys = rows[0].keys() if rows else ()
    return {key: _median([r[key] for r in rows]) for key in keys}


COLUMNS = (("loop CPU", "loop_cpu"), ("loop lag", "loop_lag"), ("encoded", "encoded"), ("out", "out"), ("in", "in"),
           ("down", "down"), ("computed", "computed"), ("sent", "sent"), ("up", "up"), ("got", "got"),
           ("sums", "sums"), ("end", "end"))


def print_timelines(rows, worker_link):
    """The timeline table of the points that have one (``r["timeline"]``); ``worker_link``: a worker's
    link in bytes/s."""
    rows = [r for r in rows if r.get("timeline")]
    if not rows:
        return
    print("   round timeline (s from the round's start; medians of the measured rounds; see benchmarks/_round_probe.py): "
          "loop CPU/lag = the coordinator's event-loop thread; out = last PARAMS part out of the coordinator, in = at "
          "the workers; down/up = a worker's download/upload span (its link alone: d/Lw, u/Lw); got = last RESULT "
          "taken; sums = the wait for the sums after it")
    head = f"   {'mode':<7}{'N':>3}" + "".join(f"{name:>10}" for name, _ in COLUMNS) + f"{'d/Lw':>7}{'u/Lw':>7}"
    print(head)
    print("   " + "-" * (len(head) - 3))
    for r in rows:
        t = r["timeline"]
        cells = "".join(f"{'-' if t.get(key) is None else format(t[key], '.3f'):>10}" for _, key in COLUMNS)
        n = r["workers"]
        print(f"   {r['mode']:<7}{n:>3}{cells}{r['bytes_out'] / n / worker_link:>7.2f}{r['bytes_in'] / n / worker_link:>7.2f}")
