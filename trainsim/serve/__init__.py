"""``trainsim serve``: a local, interactive explorer (one page, three questions: plan, size / capacity, what if).

The page is static (``static/``: HTML, CSS and JavaScript written for trainsim, charts drawn as inline SVG, no
CDN); it asks the JSON endpoints of :mod:`trainsim.serve.app`, which call :mod:`trainsim.api`, the same door as
the CLI. Requests are validated by the run spec's pydantic models (:func:`trainsim.spec.parse_run`) and the
request models of :mod:`trainsim.serve.inputs`; a bad input comes back as the CLI's one-line error. Needs the
``[serve]`` extra (Starlette + uvicorn).
"""
