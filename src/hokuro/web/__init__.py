"""The dashboard (``hokuro ui``): Starlette pages over the admin layer.

``server.serve(target)`` is what the command runs; ``app.create_app(Books(target))`` builds
the application (tests use it with Starlette's test client). Inside, from the top:
``server`` (uvicorn, the printed address) > ``app`` (routes) > ``live`` (SSE) and
``actions`` (retry, cancel) > ``pages`` > ``charts`` > ``books`` (what pages read),
``values`` (results by content type), ``formats`` and ``security`` (token, cookie, CSRF).
Nothing here is imported by ``import hokuro``.
"""
