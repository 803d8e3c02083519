"""The explorer's ASGI app (Starlette): the page, its static assets and JSON endpoints over :mod:`trainsim.api`.

Every endpoint validates its body with :mod:`trainsim.serve.inputs` (the run spec's own pydantic models); a
:class:`~trainsim.errors.TrainsimError` becomes HTTP 400 with ``{"error": "<the CLI's one line>"}``; anything
else becomes HTTP 500 with one line, never a traceback. The engine runs in worker threads (at most
``workers`` at a time), so a long request does not block the server: the event loop keeps answering while
searches run. Work per request is bounded (:data:`trainsim.api.MAX_CHIPS`, :data:`trainsim.api.MAX_SWEEP_POINTS`).
"""
from __future__ import annotations

import contextlib
import json
import math
import sys
from importlib import resources

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .. import api
from ..api import TrainsimError, reports, scenarios
from . import inputs as I
from ..report import fmt

CACHE_LIMIT = 4096     # memoised plan searches kept before the memo is cleared (bounded memory)
#: largest request body read (bytes): a spec file's own limit (trainsim.io LIMITS file_chars, as api.INPUT_LIMITS);
#: a request is a spec and a few edits, kilobytes, and was read whole before (a 50 MB body was parsed and echoed)
MAX_REQUEST_BYTES = api.INPUT_LIMITS["file_chars"]


def _clean(o):
    """JSON-able: non-finite floats -> null (as ``--json`` prints them), numpy scalars -> Python, tuples -> lists."""
    if isinstance(o, float):
        return None if math.isnan(o) or math.isinf(o) else o
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    if hasattr(o, "item") and callable(o.item):
        try:
            return _clean(o.item())
        except (TypeError, ValueError):
            return str(o)
    if o is None or isinstance(o, (str, int, bool)):
        return o
    return str(o)


def json_response(obj, status: int = 200) -> Response:
    """A JSON response of ``obj`` (non-finite numbers cleaned) with HTTP ``status``."""
    return Response(json.dumps(_clean(obj)), status_code=status, media_type="application/json")


def _trim_cache() -> None:
    scenarios.trim_cache(CACHE_LIMIT)


def _usd(x) -> str:
    """Dollars as every trainsim output prints them (:func:`trainsim.report.fmt.money`); ``n/a`` when unknown."""
    return "n/a" if x is None or not math.isfinite(x) else fmt.money(x)


def display(d: dict) -> dict:
    """The numbers of a plan answer as the terminal and the HTML report print them (:mod:`trainsim.report.fmt`)."""
    if d.get("step_time_s") is None:
        return {}
    eco = d.get("economics") or {}
    nom = lambda k: (eco.get(k) or {}).get("nominal")  # noqa: E731
    out = {"step_time_s": fmt.step_time(d["step_time_s"]), "tokens_per_s_per_chip": fmt.tokens_per_s(
        d["tokens_per_s_per_chip"]), "mfu": fmt.pct(d["mfu"]), "hfu": fmt.pct(d["hfu"]),
        "memory_per_chip_bytes": fmt.gib(d["memory_per_chip_bytes"]), "hbm_bytes": fmt.gib(d["hbm_bytes"]),
        "plan": fmt.plan(d["plan"]), "days": fmt.days(d.get("days")),
        "chip_hours": fmt.chip_hours(d.get("chip_hours"))}
    if eco:
        e = nom("energy_mwh")
        # the page's energy and cost are the run's with failures (chip-hours / goodput); `trainsim plan`'s are
        # without them: the basis is said beside them (qa28), or the same spec reads 15% dearer on the page
        out["cost_basis"] = f"with failures (goodput {fmt.pct(eco.get('goodput') or 0.0)})"
        out.update(effective_days=fmt.days(eco.get("effective_days")), goodput=fmt.pct(eco.get("goodput") or 0.0),
                   energy_mwh="n/a" if e is None else fmt.quantity(e, "MWh"), cost_capex_usd=_usd(nom("cost_capex_usd")),
                   cost_rental_usd=_usd(nom("cost_rental_usd")))
    ve = d.get("validation_error")
    if ve:
        out["validation_error"] = fmt.pct(ve["median_abs_error"])
    out["plans"] = [plan_row(p) for p in [d] + list(d.get("runners_up") or [])]   # the best plan, then runners-up
    return out


def plan_row(p: dict) -> dict:
    """One row of the page's plan table, formatted by :mod:`trainsim.report.fmt` (the page formats nothing)."""
    return {"plan": fmt.plan(p["plan"]), "step_time_s": fmt.step_time(p["step_time_s"]), "mfu": fmt.pct(p["mfu"]),
            "tokens_per_s_per_chip": fmt.tokens_per_s(p["tokens_per_s_per_chip"]),
            "memory_per_chip_bytes": fmt.gib(p["memory_per_chip_bytes"])}


# ---------------------------------------------------------------- the work (runs in a worker thread)

def run_framework(run) -> str:
    """The software stack of a request's run (its ``framework:``, set from the page's framework input; else the
    default stack of its chip's vendor): the search offers only what it has and the flags are its emitter's."""
    return api.framework_of(run)


def do_plan(body) -> dict:
    """POST /api/plan: the best plan of the request's run, its display rows and the spec it became."""
    req = I.validate(I.RunRequest, body)
    run, doc = I.parse_request_run(req)
    ans = scenarios.plan(run, top=req.top, framework=run_framework(run),
                         assumptions=I.assumptions_for(req.failure_rate))
    d = ans.to_dict()
    return {"answer": d, "display": display(d), "spec": doc}


def do_whatif(body) -> dict:
    """POST /api/whatif: the best plan at the nominal edits and at the current edits, side by side."""
    req = I.validate(I.WhatIfRequest, body)
    nom_req = req.model_copy(update={"edits": req.nominal_edits, "failure_rate": None})
    run0, doc0 = I.parse_request_run(nom_req)
    run1, doc1 = I.parse_request_run(req)
    a0 = scenarios.plan(run0, top=1, framework=run_framework(run0), assumptions=I.assumptions_for(None))
    a1 = scenarios.plan(run1, top=1, framework=run_framework(run1), assumptions=I.assumptions_for(req.failure_rate))
    d0, d1 = a0.to_dict(), a1.to_dict()
    return {"nominal": d0, "current": d1, "nominal_display": display(d0), "display": display(d1), "spec": doc1,
            "nominal_spec": doc0}


def do_size(body) -> dict:
    """POST /api/size: the systems (or chips) the request's run needs to finish in ``days``."""
    req = I.validate(I.SizeRequest, body)
    run, doc = I.parse_request_run(req)
    res = scenarios.size(run, req.days, unit=req.unit, failures=req.failures,
                         assumptions=I.assumptions_for(req.failure_rate))
    a = res.to_dict()
    best = a.get("best_plan")
    return {"answer": a, "spec": doc, "display": {"best_plan": fmt.plan(best["plan"]) if best else None}}


def do_capacity(body) -> dict:
    """POST /api/capacity: what a system of ``units`` (or ``chips``) can train in ``days``."""
    req = I.validate(I.CapacityRequest, body)
    s = api.system(req.system, field="system", where="request")
    if (req.units > 0) == (req.chips > 0):
        raise TrainsimError("give exactly one of units or chips", field="units", where="request")
    sysdoc = I.system_doc(req.system, req.edits)
    unit = int(req.edits.scale_up_size or s.scale_up_size)
    chips = req.chips or req.units * unit
    res = scenarios.capacity(sysdoc, chips, req.days, family=req.family, precision=req.precision,
                             failures=req.failures, assumptions=I.assumptions_for(req.failure_rate))
    return {"answer": res.to_dict(), "system": sysdoc, "chips": chips}


def do_sensitivity(body) -> dict:
    """POST /api/sensitivity: the run's throughput with each parameter scaled by each factor."""
    req = I.validate(I.SensitivityRequest, body)
    run, doc = I.parse_request_run(req)
    return {"answer": scenarios.sensitivity(run, req.params, req.factors).to_dict(), "spec": doc}


def do_spec_yaml(body) -> str:
    """POST /api/spec.yaml: the request's run as a run-spec YAML file."""
    req = I.validate(I.RunRequest, body)
    run, doc = I.parse_request_run(req)   # validated like the file it becomes
    note = ""
    if req.failure_rate is not None:
        note = (f"failure rate edited in the explorer: {req.failure_rate:g} interruptions per chip-hour "
                "(a scenario assumption, not a run-spec field)")
    return I.spec_yaml(doc, note)


def do_report(body) -> str:
    """POST /api/report: the run report of the request's run as HTML."""
    req = I.validate(I.RunRequest, body)
    run, doc = I.parse_request_run(req)
    return reports.report(run, spec_source="trainsim serve", top=req.top).html


WORK = {"plan": do_plan, "whatif": do_whatif, "size": do_size, "capacity": do_capacity,
        "sensitivity": do_sensitivity}


def default_request() -> dict:
    """The page's opening question (presets.yaml ``default``) as a plan request."""
    d = I.presets()["default"]
    return {"spec": {"model": I.model_value(d["model"]), "system": d["system"], "chips": d["chips"],
                     "training": {"tokens": d["tokens"], "seq_len": d["seq_len"],
                                  "global_batch_seqs": d["global_batch_seqs"], "precision": d["precision"]}}}


def warm_up() -> None:
    """Load the catalog and answer the page's opening question once (imports, model build, memo), so the first
    page load does not pay for them. Runs in a daemon thread at start-up; failures are ignored."""
    try:
        I.catalog()
        do_plan(default_request())
    except Exception:  # noqa: BLE001
        pass


def create_app(workers: int = 2, warm: bool = False) -> Starlette:
    """The explorer app; ``workers``: engine calls running at once (the rest wait; the server keeps answering);
    ``warm``: answer the opening question in the background at start-up (:func:`warm_up`)."""
    limiter = anyio.CapacityLimiter(max(1, workers))

    async def run_work(fn, body):
        try:
            out = await anyio.to_thread.run_sync(fn, body, limiter=limiter)
            _trim_cache()
            return out, None
        except TrainsimError as exc:
            return None, JSONResponse({"error": str(exc)}, status_code=400)
        except Exception as exc:  # noqa: BLE001 - one line to the page, never a traceback
            print(f"trainsim serve: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
            return None, JSONResponse({"error": f"internal error: {type(exc).__name__}: {exc}"}, status_code=500)

    async def body_of(request: Request):
        """The request's JSON body, or the one-line error response: a body over :data:`MAX_REQUEST_BYTES` (413; kept
        no further than the limit), or one that is not JSON -- nested too deep for the parser included (a RecursionError,
        which escaped as HTTP 500 and a server-log traceback for ``[`` x 100,000)."""
        chunks, n = [], 0
        async for chunk in request.stream():   # past the limit the rest is read and dropped (memory stays bounded;
            n += len(chunk)                     # answering mid-upload would reset the client's connection)
            if n <= MAX_REQUEST_BYTES:
                chunks.append(chunk)
        if n > MAX_REQUEST_BYTES:
            return None, JSONResponse({"error": f"request: larger than {MAX_REQUEST_BYTES:,} bytes (a spec file's "
                                                "limit)"}, status_code=413)
        try:
            return json.loads(b"".join(chunks)), None
        except (ValueError, UnicodeDecodeError, RecursionError):
            return None, JSONResponse({"error": "request: expected a JSON object"}, status_code=400)

    async def index(request: Request):
        html = resources.files("trainsim.serve").joinpath("static/index.html").read_text(encoding="utf-8")
        return HTMLResponse(html)

    async def catalog(request: Request):
        out, err = await run_work(lambda _: I.catalog(), None)
        return err or json_response(out)

    async def health(request: Request):
        return JSONResponse({"ok": True, "version": _version()})

    def endpoint(name):
        async def handler(request: Request):
            body, err = await body_of(request)
            if err:
                return err
            out, err = await run_work(WORK[name], body)
            return err or json_response(out)
        return handler

    async def spec_yaml(request: Request):
        body, err = await body_of(request)
        if err:
            return err
        out, err = await run_work(do_spec_yaml, body)
        return err or Response(out, media_type="application/yaml",
                               headers={"Content-Disposition": 'attachment; filename="run.yaml"'})

    async def report(request: Request):
        body, err = await body_of(request)
        if err:
            return err
        out, err = await run_work(do_report, body)
        return err or HTMLResponse(out, headers={"Content-Disposition": 'attachment; filename="report.html"'})

    static = str(resources.files("trainsim.serve").joinpath("static"))
    routes = [Route("/", index), Route("/api/catalog", catalog), Route("/api/health", health),
              Route("/api/spec.yaml", spec_yaml, methods=["POST"]), Route("/api/report", report, methods=["POST"])]
    routes += [Route(f"/api/{n}", endpoint(n), methods=["POST"]) for n in WORK]
    routes.append(Mount("/static", StaticFiles(directory=static), name="static"))
    @contextlib.asynccontextmanager
    async def lifespan(app):
        if warm:
            import threading

            threading.Thread(target=warm_up, daemon=True, name="trainsim-warm-up").start()
        yield

    return Starlette(routes=routes, lifespan=lifespan)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("trainsim")
    except Exception:  # noqa: BLE001
        return "unknown"


def serve(host: str = "127.0.0.1", port: int = 8765, workers: int = 2, quiet: bool = False) -> None:
    """Run the explorer with uvicorn until interrupted (prints its address first)."""
    import uvicorn

    print(f"trainsim explorer: http://{host}:{port}/  (Ctrl+C to stop)", flush=True)
    uvicorn.run(create_app(workers, warm=True), host=host, port=port, log_level="warning" if quiet else "info",
                access_log=not quiet)


class background:
    """The explorer in a background thread (tests, benchmarks, screenshots)::

        with background() as url:   # http://127.0.0.1:PORT (a free port unless given)
            ...
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, workers: int = 2):
        self.host, self.port, self.workers = host, port, workers

    def __enter__(self) -> str:
        import threading
        import time

        import uvicorn

        cfg = uvicorn.Config(create_app(self.workers), host=self.host, port=self.port, log_level="warning",
                             access_log=False)
        self.server = uvicorn.Server(cfg)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        for _ in range(600):
            if self.server.started or not self.thread.is_alive():
                break
            time.sleep(0.05)
        if not self.server.started:
            raise RuntimeError("the explorer did not start")
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://{self.host}:{port}"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
